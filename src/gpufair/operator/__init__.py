"""The kopf operator: reconciles TenantQuota and GPUPool, meters usage, admits and reclaims."""
