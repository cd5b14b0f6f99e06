# shellcheck shell=bash
# Shared plumbing for the shell scenario scripts (awscli.sh, rclone.sh, s3cmd.sh).
#
# Environment (set by conformance/run.sh, or by hand against any S3 endpoint):
#   ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   required
#   AWS_CA_BUNDLE      CA file for an https endpoint with a private certificate
#   BUCKET_PREFIX      unique per run; buckets are named "$BUCKET_PREFIX<suffix>"
#   RESULTS_FILE       JSON lines, one per scenario (see record)
#   TRANSPORT          http|https (default: the scheme of ENDPOINT_URL)
#   QUICK=1, LARGE_SIZE, LARGE_FILE   sizes of the large-file cases
#   DATA_DIR           our gateway's data folder: enables the registry checks
#   ARTIFACT_STORE_BIN our gateway's binary: with DATA_DIR, enables the package scenarios
#   WORK_DIR           scratch space; PYTHON  interpreter with blake3 for events.py
#   CONFORMANCE_TIER   full (default) | core: only the scenarios a script lists in CORE_SCENARIOS
#                      (what a backend changes), the others recorded as skipped

: "${ENDPOINT_URL:?ENDPOINT_URL is required}"
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID is required}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY is required}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
TRANSPORT="${TRANSPORT:-${ENDPOINT_URL%%:*}}"
BUCKET_PREFIX="${BUCKET_PREFIX:-cf-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')-}"
PYTHON="${PYTHON:-python3}"
SCENARIO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MIB=$((1024 * 1024))

WORK="$(mktemp -d "${WORK_DIR:-/tmp}/scenario.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Set by each script after sourcing this file, read by record().
export CLIENT="" VERSION=""
PASSED=0 FAILED=0 SKIPPED=0

large_size() {
    if [[ -n "${LARGE_SIZE:-}" ]]; then echo "$LARGE_SIZE"
    elif [[ "${QUICK:-}" == 1 ]]; then echo $((64 * MIB))
    else echo $((1024 * MIB)); fi
}

# Prints the path of a random file of large_size bytes: the runner's shared LARGE_FILE when it fits.
large_file() {
    local size
    size="$(large_size)"
    if [[ -n "${LARGE_FILE:-}" && -f "$LARGE_FILE" && "$(stat -c %s "$LARGE_FILE")" == "$size" ]]; then
        echo "$LARGE_FILE"
    else
        random_file "$WORK/large.bin" "$size"
        echo "$WORK/large.bin"
    fi
}

random_file() { head -c "$2" /dev/urandom >"$1"; }

bucket_name() { echo "${BUCKET_PREFIX}$1" | tr '[:upper:]' '[:lower:]'; }

# record SCENARIO pass|fail|skip DETAIL: one JSON line in RESULTS_FILE and one line on stdout.
record() {
    local line
    line="$(jq -cn --arg client "$CLIENT" --arg version "$VERSION" --arg scenario "$1" \
        --arg transport "$TRANSPORT" --arg result "$2" --arg detail "${3:0:2000}" \
        '{client: $client, version: $version, scenario: $scenario, transport: $transport, result: $result, detail: $detail}')"
    [[ -z "${RESULTS_FILE:-}" ]] || echo "$line" >>"$RESULTS_FILE"
    if [[ "$2" == pass ]]; then
        PASSED=$((PASSED + 1))
        echo "[PASS] $CLIENT $VERSION $TRANSPORT $1"
    elif [[ "$2" == skip ]]; then
        SKIPPED=$((SKIPPED + 1))
        echo "[SKIP] $CLIENT $VERSION $TRANSPORT $1: $3"
    else
        FAILED=$((FAILED + 1))
        echo "[FAIL] $CLIENT $VERSION $TRANSPORT $1: $3"
    fi
}

# Exit status of a scenario that had nothing to check here (see skip).
SKIP_STATUS=77

# run_scenario NAME FUNCTION [ARGS...]: runs the function in a subshell under `set -e`; any failing
# command fails the scenario, and the tail of its output becomes the detail; a scenario that
# calls skip is recorded as skipped, never as passed.
run_scenario() {
    local name="$1" log rc start=$SECONDS
    shift
    if [[ "${CONFORMANCE_TIER:-full}" == core && "$(tr -s '[:space:]' ' ' <<<" ${CORE_SCENARIOS:-} ")" != *" $name "* ]]; then
        record "$name" skip "front end only: runs in the full tier, on the local store"
        return 0
    fi
    log="$WORK/$name.log"
    # Not inside `if` or `||`: there bash would switch errexit off within the subshell.
    set +e
    (
        set -euo pipefail
        "$@"
    ) >"$log" 2>&1
    rc=$?
    if ((rc == 0)); then
        record "$name" pass "$((SECONDS - start))s"
    elif ((rc == SKIP_STATUS)) && grep -q '^SKIPPED:' "$log"; then
        record "$name" skip "$(grep '^SKIPPED:' "$log" | tail -n 1 | cut -c 10-)"
    elif grep -qE '^(FAILED|registry):' "$log"; then
        # The assertion that failed, with the registry's complaints, rather than the client's chatter.
        record "$name" fail "$(grep -E '^(FAILED|registry):' "$log" | tail -n 5 | tr -s '\n' ' ')"
    else
        record "$name" fail "$(tail -c 1200 "$log" | tr -s '\n' ' ')"
    fi
}

finish() {
    echo "$CLIENT: $PASSED passed, $FAILED failed, $SKIPPED skipped"
    ((FAILED == 0))
}

fail() {
    echo "FAILED: $*" >&2
    exit 1
}

# skip REASON: ends the scenario as skipped, for a check that cannot run against this server
# (for example no second user to refuse, or lifecycle days too long to watch).
skip() {
    echo "SKIPPED: $*"
    exit "$SKIP_STATUS"
}

assert_eq() { [[ "$1" == "$2" ]] || fail "${3:-values differ}: got '$1', expected '$2'"; }

assert_same_file() { cmp -s "$1" "$2" || fail "content differs: $1 vs $2 ($(stat -c %s "$1") vs $(stat -c %s "$2") bytes)"; }

# Output is matched with `grep <<<"$(cmd)"`, never `cmd | grep -q`: under pipefail, grep -q
# closing the pipe early fails the command with SIGPIPE.

# expect_error CODE COMMAND...: the command must fail and name the S3 error CODE in its output
# (CODE is an extended regex, e.g. 'NoSuchKey|\(404\)' for HEAD, whose errors carry no code).
expect_error() {
    local code="$1" out
    shift
    if out="$("$@" 2>&1)"; then
        fail "expected $code, the command succeeded: $*"
    fi
    grep -Eq -- "$code" <<<"$out" || fail "expected $code from: $* -- got: ${out:0:400}"
}

# expect_events BUCKET KEY FILE TYPE...: with DATA_DIR set, the registry must hold the event types
# for BUCKET/KEY (KEY "" for the bucket itself) and, when FILE is not "", its size and BLAKE3.
expect_events() {
    [[ -n "${DATA_DIR:-}" ]] || return 0
    local bucket="$1" key="$2" file="$3" args=()
    shift 3
    [[ -z "$key" ]] || args+=(--key "$key")
    [[ -z "$file" ]] || args+=(--file "$file")
    for t in "$@"; do args+=(--expect "$t"); done
    "$PYTHON" "$SCENARIO_DIR/events.py" --data-dir "$DATA_DIR" --bucket "$bucket" "${args[@]}" \
        || fail "registry check for $bucket/$key"
}

# can_seal: whether packages can be sealed here (our gateway, with its binary and data folder).
can_seal() { [[ -n "${DATA_DIR:-}" && -n "${ARTIFACT_STORE_BIN:-}" ]]; }

# seal_package s3://BUCKET/PREFIX NAME: seals the prefix as package NAME beside the serving gateway.
seal_package() {
    "$ARTIFACT_STORE_BIN" package seal "$1" --name "$2" --data-dir "$DATA_DIR" || fail "package seal $1"
}

# verify_package NAME: re-hashes every member of the package against its manifest.
verify_package() {
    "$ARTIFACT_STORE_BIN" package verify "$1" --data-dir "$DATA_DIR" || fail "package verify $1"
}

# Sets up the aws cli named by AWS_BIN (default: aws) against the server under test: a private
# config (path-style addressing, no profile or credentials file of the user's), VERSION and
# version_line from `aws --version`, and `aws` pointed at ENDPOINT_URL. Exits 2 when the
# binary does not run.
use_aws_cli() {
    AWS_BIN="${AWS_BIN:-aws}"
    version_line="$("$AWS_BIN" --version 2>&1)" || { echo "cannot run $AWS_BIN" >&2; exit 2; }
    VERSION="$(sed -E 's|^aws-cli/([^ ]+).*|\1|' <<<"$version_line")"
    export AWS_CONFIG_FILE="$WORK/aws-config" AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
    export AWS_PAGER=""
    printf '[default]\nregion = %s\ns3 =\n    addressing_style = path\n' "$AWS_DEFAULT_REGION" >"$AWS_CONFIG_FILE"
    aws() { "$AWS_BIN" --endpoint-url "$ENDPOINT_URL" "$@"; }
}
