"""Who is calling: the stand-in authenticates every request by its bearer token, as a real API
server does with ``--token-auth-file`` or service-account tokens.

Each gpufair component runs in e2e with its own kubeconfig (see :mod:`.kubeconfig`)
whose token maps here to the user the Helm chart's ServiceAccount for that component would be
(``system:serviceaccount:<release namespace>:<account>``, the chart installed as release
``gpufair`` in ``gpufair-system``). The test harness and kubectl are the cluster admin. The
recorded calls per user are what ``e2e/test_rbac_least_privilege.py`` checks against the
chart's RBAC.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

RELEASE_NAME = "gpufair"
RELEASE_NAMESPACE = "gpufair-system"
ADMIN = "admin"
ANONYMOUS_USER = "system:anonymous"


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """One client of the stand-in: a kubeconfig user with a token, and who that token is."""

    name: str  # the kubeconfig's user name, and the component it stands for
    token: str
    user: str
    groups: tuple[str, ...]


def _service_account(component: str, account: str) -> Identity:
    namespace = RELEASE_NAMESPACE
    return Identity(
        name=component,
        token=f"standin-{component}",
        user=f"system:serviceaccount:{namespace}:{account}",
        groups=(
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ),
    )


IDENTITIES: Mapping[str, Identity] = {
    identity.name: identity
    for identity in (
        # "standin" is the token every kubeconfig the stand-in wrote before identities had.
        Identity(
            name=ADMIN,
            token="standin",
            user="kubernetes-admin",
            groups=("system:masters", "system:authenticated"),
        ),
        _service_account("operator", f"{RELEASE_NAME}-operator"),
        # The chart runs the extender beside kube-scheduler, under the scheduler's account.
        _service_account("extender", f"{RELEASE_NAME}-scheduler"),
        _service_account("agent", f"{RELEASE_NAME}-agent"),
        _service_account("scheduler", f"{RELEASE_NAME}-scheduler"),
    )
}
"""Every identity by name: ``admin`` and one per gpufair component (the chart's component
names: ``operator``, ``extender``, ``agent``, ``scheduler``)."""

_BY_TOKEN: Mapping[str, Identity] = {identity.token: identity for identity in IDENTITIES.values()}

ANONYMOUS = Identity(
    name="anonymous", token="", user=ANONYMOUS_USER, groups=("system:unauthenticated",)
)


class UnknownTokenError(LookupError):
    """A bearer token that belongs to no identity (a real API server answers 401)."""


def authenticate(authorization: str | None) -> Identity:
    """The identity of an ``Authorization`` header; no header is the anonymous user."""
    if not authorization:
        return ANONYMOUS
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnknownTokenError("only bearer tokens are accepted")
    found = _BY_TOKEN.get(token.strip())
    if found is None:
        raise UnknownTokenError("the bearer token belongs to no identity of the stand-in")
    return found


def bearer(name: str) -> dict[str, str]:
    """HTTP headers that make a raw client (e.g. the scheduler driver) call as ``name``."""
    return {"Authorization": f"Bearer {IDENTITIES[name].token}"}
