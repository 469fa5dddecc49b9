# A commitlog image FROM scratch: no base image is pulled, the static binary is all there is.
# Build the binary first (`make build` builds it with CGO_ENABLED=0), then `docker build .`
# or `docker compose up` (see docker-compose.yml).
#
# It runs as user and group 65532 (no root), and writes nothing outside its data volume, so it
# runs with a read-only root file system (`docker run --read-only`, compose `read_only: true`,
# Kubernetes `readOnlyRootFilesystem: true`, as the Helm chart in deploy/helm sets it).
FROM scratch
COPY bin/commitlog /commitlog
# /data belongs to the server's user: a new Docker volume mounted there starts as a copy of it,
# so the server can create its files. (Kubernetes volumes get the pod's fsGroup instead.)
COPY --chown=65532:65532 deploy/docker/data/ /data/
USER 65532:65532
VOLUME /data
# 8400: the API and Raft (one port); 8401: Serf gossip (TCP and UDP); 9400: metrics and probes
# (/metrics, /healthz, /readyz) when served with --metrics-addr 0.0.0.0:9400.
EXPOSE 8400 8401 8401/udp 9400
ENTRYPOINT ["/commitlog"]
# A fixed node name: the default, the host name, is a new container ID every time the container is
# recreated, and a node restarted on its data under another name is not in its own cluster.
CMD ["serve", "--node-name", "node1", "--data-dir", "/data", "--bind-addr", "0.0.0.0:8401"]
