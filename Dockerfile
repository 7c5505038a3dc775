# The meshdns image:  docker build -t meshdns:0.1.0 .
#
# Build stage: Debian 12 with the -dev packages of scripts/deps.sh, a CMake release build.
# Runtime stage: debian:bookworm-slim with the shared libraries meshdns links and nothing
# else; no shell is used at run time (exec-form ENTRYPOINT). libuv, libnl, liburcu,
# libevent and liburing are linked statically (MESHDNS_STATIC_DEPS, for resident memory),
# so only cJSON and libcurl are needed at run time.
FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libuv1-dev libldns-dev libnl-3-dev libnl-route-3-dev libcurl4-openssl-dev \
      libcjson-dev liburcu-dev libevent-dev liburing-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DMESHDNS_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target meshdns \
 && strip /build/meshdns

FROM debian:bookworm-slim
# libcurl4 and libcjson1 are for the Kubernetes ServiceEntry source; libldns is only used
# by the tests and is not linked into meshdns.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libcurl4 libcjson1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/meshdns /usr/bin/meshdns
# Root, with every capability dropped but NET_ADMIN and NET_BIND_SERVICE (daemonset.yaml),
# no privilege escalation and a read-only root filesystem. A non-root user would need file
# capabilities (setcap on the binary): Kubernetes does not grant ambient capabilities to a
# non-root container, and file capabilities are ignored under no_new_privs, so the pod would
# need allowPrivilegeEscalation: true, and the image pipeline would have to keep the
# security.capability xattr. Root with a two-capability bounding set and no_new_privs can
# do less than that.
USER 0:0
ENTRYPOINT ["/usr/bin/meshdns"]
