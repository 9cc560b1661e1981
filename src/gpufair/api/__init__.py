"""User-facing contracts: the CRD models (TenantQuota, GPUPool) and the extender wire types.

The CRD YAML in ``crds/`` is generated from these models (``gpufair crds``).
"""
