# One image for every gpufair component; the Helm chart picks the component by its arguments:
#   gpufair operator | gpufair extender | gpufair agent
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="gpufair" \
      org.opencontainers.image.description="Fair, topology-aware sharing of a Kubernetes GPU fleet" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin gpufair
# The node agent falls back to `nvidia-smi topo -m`; the NVIDIA container toolkit mounts
# nvidia-smi and libnvidia-ml into the agent's container, so nothing NVIDIA is baked in here.
USER 65532
ENTRYPOINT ["gpufair"]
CMD ["--help"]
