#!/usr/bin/env bash
# Install what the test suite needs beyond Rust, idempotently (CI runs as root on a fresh Debian
# machine with the package registries reachable):
# - python3 with botocore (the mock's end-to-end test drives it with the AWS SDK's own IMDS client);
# - iproute2, curl and util-linux (`ip`, `curl`, `unshare`) for tests that build private network
#   namespaces;
# - clang, for the live sensor's eBPF program (no headers needed: the C program is self-contained);
# - make and a C compiler (rdkafka builds its bundled librdkafka from source) and the Kafka test
#   broker tansu 0.6.0, built once into ${IMDSGUARD_CACHE:-$HOME/.cache/imdsguard}/tansu-0.6.0 by
#   scripts/kafka-broker.sh (about 14 minutes on 2 cores the first time).
# Tests whose prerequisite is still missing fail with a message naming it (or print SKIPPED when
# IMDSGUARD_ALLOW_SKIP=1).
set -uo pipefail
missing_apt=()
command -v ip >/dev/null 2>&1 || missing_apt+=(iproute2)
command -v curl >/dev/null 2>&1 || missing_apt+=(curl)
command -v unshare >/dev/null 2>&1 || missing_apt+=(util-linux)
# The live sensor's end-to-end test also drives wget and python3 against the mock.
command -v wget >/dev/null 2>&1 || missing_apt+=(wget)
command -v python3 >/dev/null 2>&1 || missing_apt+=(python3)
# The sensor's eBPF program is compiled by clang at build time (scripts/test.sh requires it with
# IMDSGUARD_REQUIRE_EBPF=1); any clang 14+ will do, Debian's `clang` package is clang-14 on 12.
have_clang=0
for c in "${CLANG:-}" clang clang-20 clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
  [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && have_clang=1 && break
done
[ "$have_clang" = 1 ] || missing_apt+=(clang)
command -v make >/dev/null 2>&1 || missing_apt+=(make)
command -v cc >/dev/null 2>&1 || missing_apt+=(gcc)
if [ ${#missing_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-prereqs: installing ${missing_apt[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_apt[@]}" >/dev/null 2>&1 \
      || echo "test-prereqs: could not install ${missing_apt[*]}" >&2
  else
    echo "test-prereqs: missing ${missing_apt[*]} (not root or no apt-get)" >&2
  fi
fi
if ! python3 -c "import botocore" >/dev/null 2>&1; then
  echo "test-prereqs: installing botocore" >&2
  python3 -m pip install --quiet --disable-pip-version-check "botocore==1.43.11" >/dev/null 2>&1 \
    || echo "test-prereqs: could not install botocore" >&2
fi
# serve's client-compatibility test drives it with the official Elasticsearch Python client.
if ! python3 -c "import elasticsearch, sys; sys.exit(0 if elasticsearch.__version__[0] == 8 else 1)" >/dev/null 2>&1; then
  echo "test-prereqs: installing the elasticsearch 8.x Python client" >&2
  python3 -m pip install --quiet --disable-pip-version-check "elasticsearch==8.17.2" >/dev/null 2>&1 \
    || echo "test-prereqs: could not install the elasticsearch Python client" >&2
fi
"$(dirname "$0")/kafka-broker.sh" install >/dev/null || echo "test-prereqs: could not install the tansu test broker" >&2
exit 0
