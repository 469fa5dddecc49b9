# A commitlog image FROM scratch: no base image is pulled, the static binary is all there is.
# Build the binary first (`make build` builds it with CGO_ENABLED=0), then `docker build .`
# or `docker compose up` (see docker-compose.yml).
FROM scratch
COPY bin/commitlog /commitlog
VOLUME /data
# 8400: the API and Raft (one port); 8401: Serf gossip (TCP and UDP).
EXPOSE 8400 8401 8401/udp
ENTRYPOINT ["/commitlog"]
CMD ["serve", "--data-dir", "/data", "--bind-addr", "0.0.0.0:8401"]
