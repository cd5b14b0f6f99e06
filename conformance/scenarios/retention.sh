#!/usr/bin/env bash
# Versioning, Object Lock and lifecycle through `aws s3api`, with AWS's exact error codes
# (environment: see lib.sh).
#   AWS_BIN                       the aws binary (default: aws)
#   LIMITED_ACCESS_KEY_ID, LIMITED_SECRET_ACCESS_KEY
#                                 a user not allowed to bypass governance retention; the
#                                 bypass-permission scenario is skipped without it
#   LIFECYCLE_DAY_SECONDS         the length of a lifecycle day on the server; the expiry
#                                 scenario runs only when it is short (at most 10 s)
set -uo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

use_aws_cli
CLIENT="aws-cli s3api retention"
s3api() { aws s3api "$@"; }
# As the user who may not bypass governance retention.
limited() {
    AWS_ACCESS_KEY_ID="$LIMITED_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$LIMITED_SECRET_ACCESS_KEY" aws s3api "$@"
}

V="$(bucket_name ret-versions)"     # versioning enabled
N="$(bucket_name ret-plain)"        # never versioned
L="$(bucket_name ret-lock)"         # Object Lock enabled
C="$(bucket_name ret-lifecycle)"    # lifecycle rules
random_file "$WORK/one" 1000
random_file "$WORK/two" 2000
future() { date -u -d "+$1" +%Y-%m-%dT%H:%M:%SZ; }
put() { s3api put-object --bucket "$1" --key "$2" --body "$3" "${@:4}" --query VersionId --output text; }

versioning_null_semantics() {
    s3api create-bucket --bucket "$N" >/dev/null
    assert_eq "$(s3api get-bucket-versioning --bucket "$N" --query Status --output text)" None "new bucket"
    s3api put-object --bucket "$N" --key k --body "$WORK/one" >/dev/null
    # The null version of a never-versioned bucket is readable by its id, `null`.
    s3api get-object --bucket "$N" --key k --version-id null "$WORK/null.down" >/dev/null
    assert_same_file "$WORK/one" "$WORK/null.down"
    s3api put-bucket-versioning --bucket "$N" --versioning-configuration Status=Enabled
    local v2
    v2="$(put "$N" k "$WORK/two")"
    [[ "$v2" != null && -n "$v2" ]] || fail "enabled bucket gave version id '$v2'"
    s3api put-bucket-versioning --bucket "$N" --versioning-configuration Status=Suspended
    assert_eq "$(s3api get-bucket-versioning --bucket "$N" --query Status --output text)" Suspended "status"
    # Suspended: a write replaces the null version and keeps v2.
    assert_eq "$(put "$N" k "$WORK/one")" null "version id of a write while suspended"
    local out
    out="$(s3api list-object-versions --bucket "$N" --prefix k --output json)"
    assert_eq "$(jq '.Versions | length' <<<"$out")" 2 "versions after suspended write"
    assert_eq "$(jq -r '.Versions[] | select(.IsLatest) | .VersionId' <<<"$out")" null "latest"
    s3api get-object --bucket "$N" --key k --version-id "$v2" "$WORK/v2.down" >/dev/null
    assert_same_file "$WORK/two" "$WORK/v2.down"
    # A delete while suspended puts a null delete marker in place of the null version.
    out="$(s3api delete-object --bucket "$N" --key k --output json)"
    assert_eq "$(jq -r .DeleteMarker <<<"$out")" true "DeleteMarker"
    assert_eq "$(jq -r .VersionId <<<"$out")" null "marker id"
    out="$(s3api list-object-versions --bucket "$N" --prefix k --output json)"
    assert_eq "$(jq '.Versions | length' <<<"$out")" 1 "versions after suspended delete"
    assert_eq "$(jq -r '.DeleteMarkers[0].VersionId' <<<"$out")" null "delete marker id"
}

list_object_versions() {
    s3api create-bucket --bucket "$V" >/dev/null
    s3api put-bucket-versioning --bucket "$V" --versioning-configuration Status=Enabled
    for k in a/1 a/2 b c; do
        put "$V" "$k" "$WORK/one" >/dev/null
        put "$V" "$k" "$WORK/two" >/dev/null
    done
    s3api delete-object --bucket "$V" --key c >/dev/null
    local out
    out="$(s3api list-object-versions --bucket "$V" --output json)"
    assert_eq "$(jq '.Versions | length' <<<"$out")" 8 "versions"
    assert_eq "$(jq '.DeleteMarkers | length' <<<"$out")" 1 "delete markers"
    assert_eq "$(jq -r '[.Versions[].Key] | join(",")' <<<"$out")" "a/1,a/1,a/2,a/2,b,b,c,c" "key order"
    assert_eq "$(jq -r '[.Versions[] | select(.Key == "b") | .Size] | join(",")' <<<"$out")" "2000,1000" "newest first"
    assert_eq "$(jq -r '.DeleteMarkers[0].IsLatest' <<<"$out")" true "marker is latest"
    out="$(s3api list-object-versions --bucket "$V" --delimiter / --output json)"
    assert_eq "$(jq -r '.CommonPrefixes[0].Prefix' <<<"$out")" a/ "common prefix"
    assert_eq "$(jq '.Versions | length' <<<"$out")" 4 "versions beside the prefix"
    out="$(s3api list-object-versions --bucket "$V" --prefix a/ --output json)"
    assert_eq "$(jq '.Versions | length' <<<"$out")" 4 "versions under a/"
    # Pages of three, by hand: key-marker and version-id-marker.
    out="$(s3api list-object-versions --bucket "$V" --max-keys 3 --no-paginate --output json)"
    assert_eq "$(jq -r .IsTruncated <<<"$out")" true "first page truncated"
    assert_eq "$(jq -r .NextKeyMarker <<<"$out")" a/2 "NextKeyMarker"
    local marker id seen=3
    marker="$(jq -r .NextKeyMarker <<<"$out")"
    id="$(jq -r .NextVersionIdMarker <<<"$out")"
    while :; do
        out="$(s3api list-object-versions --bucket "$V" --max-keys 3 --no-paginate --key-marker "$marker" \
            --version-id-marker "$id" --output json)"
        seen=$((seen + $(jq '(.Versions // []) + (.DeleteMarkers // []) | length' <<<"$out")))
        [[ "$(jq -r .IsTruncated <<<"$out")" == true ]] || break
        marker="$(jq -r .NextKeyMarker <<<"$out")"
        id="$(jq -r .NextVersionIdMarker <<<"$out")"
    done
    assert_eq "$seen" 9 "entries over all pages"
    # The CLI's own pagination gets everything too.
    out="$(s3api list-object-versions --bucket "$V" --page-size 2 --output json)"
    assert_eq "$(jq '.Versions | length' <<<"$out")" 8 "versions with --page-size 2"
    expect_error 'InvalidArgument' s3api list-object-versions --bucket "$V" --version-id-marker "$id" --no-paginate
    # A key marker alone starts after every version of that key.
    out="$(s3api list-object-versions --bucket "$V" --key-marker a/2 --output json)"
    assert_eq "$(jq -r '[.Versions[].Key] | unique | join(",")' <<<"$out")" "b,c" "after key-marker a/2"
}

version_reads_and_deletes() {
    local v1 v2 marker out
    v1="$(put "$V" r "$WORK/one")"
    v2="$(put "$V" r "$WORK/two")"
    s3api get-object --bucket "$V" --key r --version-id "$v1" "$WORK/r1" >/dev/null
    assert_same_file "$WORK/one" "$WORK/r1"
    assert_eq "$(s3api head-object --bucket "$V" --key r --version-id "$v1" --query ContentLength --output text)" 1000 "HEAD by id"
    s3api copy-object --bucket "$V" --key r-copy --copy-source "$V/r?versionId=$v1" >/dev/null
    s3api get-object --bucket "$V" --key r-copy "$WORK/rc" >/dev/null
    assert_same_file "$WORK/one" "$WORK/rc"
    marker="$(s3api delete-object --bucket "$V" --key r --query VersionId --output text)"
    expect_error NoSuchKey s3api get-object --bucket "$V" --key r "$WORK/x"
    # GET of a delete marker by id: 405 MethodNotAllowed, with x-amz-delete-marker.
    expect_error MethodNotAllowed s3api get-object --bucket "$V" --key r --version-id "$marker" "$WORK/x"
    out="$(response_of_get r "$marker")"
    grep -qi "'x-amz-delete-marker': 'true'" <<<"$out" || fail "no x-amz-delete-marker header: $out"
    grep -q '405' <<<"$out" || fail "not 405: $out"
    expect_error 'InvalidRequest' s3api copy-object --bucket "$V" --key r-copy2 --copy-source "$V/r?versionId=$marker"
    # A delete marker holds no tags: 405 whether it is current or named by id.
    expect_error MethodNotAllowed s3api get-object-tagging --bucket "$V" --key r --version-id "$marker"
    expect_error MethodNotAllowed s3api get-object-tagging --bucket "$V" --key r
    expect_error MethodNotAllowed s3api put-object-tagging --bucket "$V" --key r --version-id "$marker" \
        --tagging 'TagSet=[{Key=k,Value=v}]'
    expect_error MethodNotAllowed s3api delete-object-tagging --bucket "$V" --key r
    # A version id that could be one but is not answers NoSuchVersion; one that could not,
    # InvalidArgument, as on AWS.
    expect_error 'NoSuchVersion' s3api get-object --bucket "$V" --key r \
        --version-id 00000000000000000000000000000000000000000000 "$WORK/x"
    expect_error 'InvalidArgument' s3api get-object --bucket "$V" --key r --version-id 0000nosuchversion "$WORK/x"
    expect_error 'InvalidArgument' s3api delete-object --bucket "$V" --key r --version-id 0000nosuchversion
    # Deleting the marker by id brings v2 back.
    s3api delete-object --bucket "$V" --key r --version-id "$marker" >/dev/null
    s3api get-object --bucket "$V" --key r "$WORK/r2" >/dev/null
    assert_same_file "$WORK/two" "$WORK/r2"
    # DeleteObjects with versions removes exactly those versions.
    out="$(s3api delete-objects --bucket "$V" --output json \
        --delete "{\"Objects\":[{\"Key\":\"r\",\"VersionId\":\"$v1\"},{\"Key\":\"r\",\"VersionId\":\"$v2\"}]}")"
    assert_eq "$(jq '.Deleted | length' <<<"$out")" 2 "deleted versions"
    assert_eq "$(jq -r '[.Deleted[].VersionId] | sort | join(",")' <<<"$out")" "$(printf '%s\n' "$v1" "$v2" | sort | paste -sd,)" "ids"
    out="$(s3api list-object-versions --bucket "$V" --prefix r --output json)"
    assert_eq "$(jq '[.Versions[]? | select(.Key == "r")] | length' <<<"$out")" 0 "versions of r left"
    expect_events "$V" r "" v1.object.put v1.object.delete_marker.created v1.object.deleted
}

# The raw response of a GET by version id, as the CLI's debug log shows it.
response_of_get() {
    aws s3api get-object --bucket "$V" --key "$1" --version-id "$2" "$WORK/x" --debug 2>&1 \
        | grep -E "Response headers|Response body|status_code|HTTP/1.1\" [0-9]+" || true
}

lock_configuration() {
    s3api create-bucket --bucket "$L" --object-lock-enabled-for-bucket >/dev/null
    assert_eq "$(s3api get-bucket-versioning --bucket "$L" --query Status --output text)" Enabled "lock turns versioning on"
    expect_error 'InvalidBucketState' s3api put-bucket-versioning --bucket "$L" --versioning-configuration Status=Suspended
    local out
    out="$(s3api get-object-lock-configuration --bucket "$L" --output json)"
    assert_eq "$(jq -r .ObjectLockConfiguration.ObjectLockEnabled <<<"$out")" Enabled "enabled without a rule"
    s3api put-object-lock-configuration --bucket "$L" --object-lock-configuration \
        '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}'
    out="$(s3api get-object-lock-configuration --bucket "$L" --output json)"
    assert_eq "$(jq -c .ObjectLockConfiguration.Rule.DefaultRetention <<<"$out")" '{"Mode":"GOVERNANCE","Days":1}' "rule"
    s3api put-object-lock-configuration --bucket "$L" --object-lock-configuration \
        '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"COMPLIANCE","Years":1}}}'
    out="$(s3api get-object-lock-configuration --bucket "$L" --output json)"
    assert_eq "$(jq -c .ObjectLockConfiguration.Rule.DefaultRetention <<<"$out")" '{"Mode":"COMPLIANCE","Years":1}' "years rule"
    # Back to no default, so later scenarios choose their own retention.
    s3api put-object-lock-configuration --bucket "$L" --object-lock-configuration '{"ObjectLockEnabled":"Enabled"}'
    expect_events "$L" "" "" v1.bucket.created v1.bucket.object_lock.set
}

lock_configuration_errors() {
    local cfg='{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}'
    # Object Lock turns on for an existing bucket only once its versioning is Enabled.
    expect_error 'InvalidBucketState' s3api put-object-lock-configuration --bucket "$N" --object-lock-configuration "$cfg"
    expect_error 'ObjectLockConfigurationNotFoundError' s3api get-object-lock-configuration --bucket "$V"
    expect_error 'MalformedXML' s3api put-object-lock-configuration --bucket "$L" --object-lock-configuration \
        '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1,"Years":1}}}'
    expect_error 'MalformedXML' s3api put-object-lock-configuration --bucket "$L" --object-lock-configuration \
        '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"governance","Days":1}}}'
    expect_error 'MalformedXML' s3api put-object-lock-configuration --bucket "$L" --object-lock-configuration \
        '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"FOREVER","Days":1}}}'
    expect_error 'InvalidRetentionPeriod' s3api put-object-lock-configuration --bucket "$L" --object-lock-configuration \
        '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":0}}}'
    expect_error 'InvalidRetentionPeriod' s3api put-object-lock-configuration --bucket "$L" --object-lock-configuration \
        '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"COMPLIANCE","Years":-1}}}'
    # Retention and legal hold on a bucket without Object Lock.
    put "$V" nolock "$WORK/one" >/dev/null
    expect_error 'InvalidRequest' s3api put-object-retention --bucket "$V" --key nolock \
        --retention "{\"Mode\":\"GOVERNANCE\",\"RetainUntilDate\":\"$(future '1 day')\"}"
    expect_error 'InvalidRequest' s3api get-object-retention --bucket "$V" --key nolock
    expect_error 'InvalidRequest' s3api put-object-legal-hold --bucket "$V" --key nolock --legal-hold Status=ON
    expect_error 'InvalidRequest' s3api get-object-legal-hold --bucket "$V" --key nolock
    expect_error 'InvalidRequest' s3api put-object --bucket "$V" --key nolock --body "$WORK/one" \
        --object-lock-mode GOVERNANCE --object-lock-retain-until-date "$(future '1 day')"
    put "$L" hold "$WORK/one" >/dev/null
    expect_error 'MalformedXML' s3api put-object-legal-hold --bucket "$L" --key hold --legal-hold Status=MAYBE
    expect_error 'NoSuchObjectLockConfiguration' s3api get-object-retention --bucket "$L" --key hold
    local marker
    marker="$(s3api delete-object --bucket "$L" --key hold --query VersionId --output text)"
    expect_error 'MethodNotAllowed' s3api get-object-legal-hold --bucket "$L" --key hold --version-id "$marker"
    expect_error 'NoSuchKey' s3api get-object-legal-hold --bucket "$L" --key hold
}

governance_retention() {
    local v out
    v="$(put "$L" gov "$WORK/one" --object-lock-mode GOVERNANCE --object-lock-retain-until-date "$(future '2 days')")"
    out="$(s3api head-object --bucket "$L" --key gov --output json)"
    assert_eq "$(jq -r .ObjectLockMode <<<"$out")" GOVERNANCE "HEAD lock mode"
    [[ "$(jq -r .ObjectLockRetainUntilDate <<<"$out")" != null ]] || fail "HEAD without retain-until date"
    out="$(s3api get-object --bucket "$L" --key gov "$WORK/g" --output json)"
    assert_eq "$(jq -r .ObjectLockMode <<<"$out")" GOVERNANCE "GET lock mode"
    assert_eq "$(s3api get-object-retention --bucket "$L" --key gov --version-id "$v" --query Retention.Mode --output text)" \
        GOVERNANCE "GetObjectRetention"
    expect_error 'AccessDenied' s3api delete-object --bucket "$L" --key gov --version-id "$v"
    # Shortening without bypass: refused; extending: always allowed.
    expect_error 'AccessDenied' s3api put-object-retention --bucket "$L" --key gov --version-id "$v" \
        --retention "{\"Mode\":\"GOVERNANCE\",\"RetainUntilDate\":\"$(future '1 day')\"}"
    s3api put-object-retention --bucket "$L" --key gov --version-id "$v" \
        --retention "{\"Mode\":\"GOVERNANCE\",\"RetainUntilDate\":\"$(future '3 days')\"}"
    # DELETE without a version id: 204 and a delete marker; the locked version stays.
    out="$(s3api delete-object --bucket "$L" --key gov --output json)"
    assert_eq "$(jq -r .DeleteMarker <<<"$out")" true "delete marker on a locked object"
    s3api get-object --bucket "$L" --key gov --version-id "$v" "$WORK/g" >/dev/null
    assert_same_file "$WORK/one" "$WORK/g"
    # The root user may bypass: shorten, then delete the version for good.
    s3api put-object-retention --bucket "$L" --key gov --version-id "$v" --bypass-governance-retention \
        --retention "{\"Mode\":\"GOVERNANCE\",\"RetainUntilDate\":\"$(future '1 day')\"}"
    s3api delete-object --bucket "$L" --key gov --version-id "$v" --bypass-governance-retention >/dev/null
    expect_error 'NoSuchVersion' s3api get-object --bucket "$L" --key gov --version-id "$v" "$WORK/g"
    expect_events "$L" gov "" v1.object.put v1.retention.set v1.retention.bypassed v1.object.deleted
}

bypass_needs_permission() {
    [[ -n "${LIMITED_ACCESS_KEY_ID:-}" ]] || skip "no second user (LIMITED_ACCESS_KEY_ID) to be refused"
    local v
    v="$(put "$L" gov-limited "$WORK/one" --object-lock-mode GOVERNANCE --object-lock-retain-until-date "$(future '2 days')")"
    expect_error 'AccessDenied' limited delete-object --bucket "$L" --key gov-limited --version-id "$v" \
        --bypass-governance-retention
    expect_error 'AccessDenied' limited put-object-retention --bucket "$L" --key gov-limited --version-id "$v" \
        --bypass-governance-retention --retention "{\"Mode\":\"GOVERNANCE\",\"RetainUntilDate\":\"$(future '1 day')\"}"
    s3api get-object --bucket "$L" --key gov-limited --version-id "$v" "$WORK/g" >/dev/null
}

compliance_retention() {
    local v out
    v="$(put "$L" comp "$WORK/one" --object-lock-mode COMPLIANCE --object-lock-retain-until-date "$(future '2 days')")"
    expect_error 'AccessDenied' s3api delete-object --bucket "$L" --key comp --version-id "$v" --bypass-governance-retention
    expect_error 'AccessDenied' s3api put-object-retention --bucket "$L" --key comp --version-id "$v" \
        --bypass-governance-retention --retention "{\"Mode\":\"COMPLIANCE\",\"RetainUntilDate\":\"$(future '1 day')\"}"
    expect_error 'AccessDenied' s3api put-object-retention --bucket "$L" --key comp --version-id "$v" \
        --bypass-governance-retention --retention "{\"Mode\":\"GOVERNANCE\",\"RetainUntilDate\":\"$(future '5 days')\"}"
    s3api put-object-retention --bucket "$L" --key comp --version-id "$v" \
        --retention "{\"Mode\":\"COMPLIANCE\",\"RetainUntilDate\":\"$(future '4 days')\"}"
    # DeleteObjects: the locked version comes back in Errors, the rest is deleted.
    local free
    free="$(put "$L" free "$WORK/two")"
    out="$(s3api delete-objects --bucket "$L" --output json --bypass-governance-retention \
        --delete "{\"Objects\":[{\"Key\":\"comp\",\"VersionId\":\"$v\"},{\"Key\":\"free\",\"VersionId\":\"$free\"}]}")"
    assert_eq "$(jq -r '.Errors[0].Key + " " + .Errors[0].Code' <<<"$out")" "comp AccessDenied" "Errors"
    assert_eq "$(jq -r '.Deleted[0].Key' <<<"$out")" free "Deleted"
    # A copy and a multipart upload carry lock headers too.
    s3api copy-object --bucket "$L" --key comp-copy --copy-source "$L/comp?versionId=$v" \
        --object-lock-mode COMPLIANCE --object-lock-retain-until-date "$(future '1 day')" >/dev/null
    assert_eq "$(s3api head-object --bucket "$L" --key comp-copy --query ObjectLockMode --output text)" COMPLIANCE "copy lock"
    local id
    id="$(s3api create-multipart-upload --bucket "$L" --key mpu-locked --object-lock-mode GOVERNANCE \
        --object-lock-retain-until-date "$(future '1 day')" --object-lock-legal-hold-status ON --query UploadId --output text)"
    local etag
    etag="$(s3api upload-part --bucket "$L" --key mpu-locked --upload-id "$id" --part-number 1 --body "$WORK/one" \
        --query ETag --output text)"
    s3api complete-multipart-upload --bucket "$L" --key mpu-locked --upload-id "$id" \
        --multipart-upload "{\"Parts\":[{\"PartNumber\":1,\"ETag\":$etag}]}" >/dev/null
    out="$(s3api head-object --bucket "$L" --key mpu-locked --output json)"
    assert_eq "$(jq -r '.ObjectLockMode + " " + .ObjectLockLegalHoldStatus' <<<"$out")" "GOVERNANCE ON" "multipart lock"
    # A bucket that still holds locked versions cannot be deleted.
    expect_error 'BucketNotEmpty' s3api delete-bucket --bucket "$L"
}

legal_hold() {
    local v
    v="$(put "$L" held "$WORK/one" --object-lock-legal-hold-status ON)"
    assert_eq "$(s3api get-object-legal-hold --bucket "$L" --key held --query LegalHold.Status --output text)" ON "hold"
    assert_eq "$(s3api head-object --bucket "$L" --key held --query ObjectLockLegalHoldStatus --output text)" ON "HEAD hold"
    expect_error 'AccessDenied' s3api delete-object --bucket "$L" --key held --version-id "$v" --bypass-governance-retention
    s3api put-object-legal-hold --bucket "$L" --key held --version-id "$v" --legal-hold Status=OFF
    assert_eq "$(s3api get-object-legal-hold --bucket "$L" --key held --query LegalHold.Status --output text)" OFF "hold off"
    s3api delete-object --bucket "$L" --key held --version-id "$v" >/dev/null
    expect_events "$L" held "" v1.object.put v1.legal_hold.set v1.object.deleted
}

default_retention_applies() {
    s3api put-object-lock-configuration --bucket "$L" --object-lock-configuration \
        '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}'
    put "$L" defaulted "$WORK/one" >/dev/null
    assert_eq "$(s3api head-object --bucket "$L" --key defaulted --query ObjectLockMode --output text)" GOVERNANCE "default mode"
    s3api put-object-lock-configuration --bucket "$L" --object-lock-configuration '{"ObjectLockEnabled":"Enabled"}'
}

lifecycle_configuration() {
    s3api create-bucket --bucket "$C" >/dev/null
    s3api put-bucket-versioning --bucket "$C" --versioning-configuration Status=Enabled
    expect_error 'NoSuchLifecycleConfiguration' s3api get-bucket-lifecycle-configuration --bucket "$C"
    s3api put-bucket-lifecycle-configuration --bucket "$C" --lifecycle-configuration '{"Rules":[
        {"ID":"tmp","Status":"Enabled","Filter":{"Prefix":"tmp/"},"Expiration":{"Days":1},
         "NoncurrentVersionExpiration":{"NoncurrentDays":1},"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}},
        {"ID":"long","Status":"Enabled","Filter":{"And":{"Prefix":"long/","Tags":[{"Key":"kind","Value":"report"}],
         "ObjectSizeGreaterThan":10}},"Expiration":{"Days":1000}},
        {"ID":"old","Status":"Enabled","Filter":{"ObjectSizeLessThan":5},
         "NoncurrentVersionExpiration":{"NoncurrentDays":1,"NewerNoncurrentVersions":2}},
        {"ID":"markers","Status":"Disabled","Filter":{"Prefix":"gone/"},"Expiration":{"ExpiredObjectDeleteMarker":true}},
        {"ID":"dated","Status":"Enabled","Filter":{"Prefix":"dated/"},"Expiration":{"Date":"2099-01-01T00:00:00Z"}}]}'
    local out
    out="$(s3api get-bucket-lifecycle-configuration --bucket "$C" --output json)"
    assert_eq "$(jq -r '[.Rules[].ID] | join(",")' <<<"$out")" "tmp,long,old,markers,dated" "rule ids"
    assert_eq "$(jq -r '.Rules[1].Filter.And.Tags[0].Value' <<<"$out")" report "And tags"
    assert_eq "$(jq -r '.Rules[2].NoncurrentVersionExpiration.NewerNoncurrentVersions' <<<"$out")" 2 "NewerNoncurrentVersions"
    assert_eq "$(jq -r '.Rules[3].Status' <<<"$out")" Disabled "status"
    # x-amz-expiration names the rule that will expire the object, on GET and HEAD.
    s3api put-object --bucket "$C" --key long/report --body "$WORK/one" --tagging kind=report >/dev/null
    out="$(s3api head-object --bucket "$C" --key long/report --query Expiration --output text)"
    grep -q 'rule-id="long"' <<<"$out" || fail "HEAD Expiration: $out"
    grep -q 'expiry-date="' <<<"$out" || fail "HEAD Expiration date: $out"
    out="$(s3api get-object --bucket "$C" --key long/report "$WORK/lr" --query Expiration --output text)"
    grep -q 'rule-id="long"' <<<"$out" || fail "GET Expiration: $out"
    s3api put-object --bucket "$C" --key dated/x --body "$WORK/one" >/dev/null
    out="$(s3api head-object --bucket "$C" --key dated/x --query Expiration --output text)"
    grep -q 'expiry-date="Thu, 01 Jan 2099 00:00:00 GMT", rule-id="dated"' <<<"$out" || fail "dated Expiration: $out"
    # An object no rule expires carries no header.
    s3api put-object --bucket "$C" --key keep/x --body "$WORK/one" >/dev/null
    assert_eq "$(s3api head-object --bucket "$C" --key keep/x --query Expiration --output text)" None "no Expiration"
    expect_events "$C" "" "" v1.bucket.lifecycle.set
}

lifecycle_errors() {
    local id256
    id256="$(head -c 256 /dev/zero | tr '\0' x)"
    expect_error 'InvalidArgument' s3api put-bucket-lifecycle-configuration --bucket "$C" --lifecycle-configuration \
        "{\"Rules\":[{\"ID\":\"$id256\",\"Status\":\"Enabled\",\"Filter\":{\"Prefix\":\"\"},\"Expiration\":{\"Days\":1}}]}"
    expect_error 'InvalidArgument' s3api put-bucket-lifecycle-configuration --bucket "$C" --lifecycle-configuration \
        '{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":"x/"},"Expiration":{"Days":1}},
                   {"ID":"a","Status":"Enabled","Filter":{"Prefix":"y/"},"Expiration":{"Days":2}}]}'
    expect_error 'InvalidArgument' s3api put-bucket-lifecycle-configuration --bucket "$C" --lifecycle-configuration \
        '{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":"x/"},"Expiration":{"Days":0}}]}'
    expect_error 'MalformedXML' s3api put-bucket-lifecycle-configuration --bucket "$C" --lifecycle-configuration \
        '{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":"x/"},"Expiration":{"Days":1,"ExpiredObjectDeleteMarker":true}}]}'
    expect_error 'MalformedXML' s3api put-bucket-lifecycle-configuration --bucket "$C" --lifecycle-configuration \
        '{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":"x/"}}]}'
    expect_error 'MalformedXML' s3api put-bucket-lifecycle-configuration --bucket "$C" --lifecycle-configuration \
        '{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":"x/","Tag":{"Key":"k","Value":"v"}},"Expiration":{"Days":1}}]}'
    # The refused configurations left the stored one alone.
    assert_eq "$(s3api get-bucket-lifecycle-configuration --bucket "$C" --query 'length(Rules)' --output text)" 5 "rules kept"
    s3api put-bucket-versioning --bucket "$N" --versioning-configuration Status=Enabled
    s3api put-bucket-lifecycle-configuration --bucket "$N" --lifecycle-configuration \
        '{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":"x/"},"Expiration":{"Days":1}}]}'
    s3api delete-bucket-lifecycle --bucket "$N"
    expect_error 'NoSuchLifecycleConfiguration' s3api get-bucket-lifecycle-configuration --bucket "$N"
    expect_events "$N" "" "" v1.bucket.lifecycle.set v1.bucket.lifecycle.deleted
}

# wait_for SECONDS COMMAND...: retries until the command succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { "$@" || true; fail "still not true after the wait: $*"; }
        sleep 1
    done
}

versions_of() { s3api list-object-versions --bucket "$1" --prefix "$2" --output json; }
count_versions() { [[ "$(versions_of "$1" "$2" | jq -s '.[0].Versions // [] | length')" == "$3" ]]; }
has_marker() { [[ "$(versions_of "$1" "$2" | jq -s '.[0].DeleteMarkers // [] | length')" -ge 1 ]]; }
# `jq -s`: the CLI prints nothing at all for a listing without uploads.
no_upload() { [[ "$(s3api list-multipart-uploads --bucket "$1" --prefix "$2" --output json | jq -s '.[0].Uploads // [] | length')" == 0 ]]; }

lifecycle_sweeper() {
    ((${LIFECYCLE_DAY_SECONDS:-86400} <= 10)) \
        || skip "the server's lifecycle day is ${LIFECYCLE_DAY_SECONDS:-86400}s: nothing expires during a test run"
    local wait=$((LIFECYCLE_DAY_SECONDS * 6 + 10))
    # tmp/: the current version gets a delete marker, then every noncurrent version goes.
    put "$C" tmp/a "$WORK/one" >/dev/null
    put "$C" tmp/a "$WORK/two" >/dev/null
    s3api create-multipart-upload --bucket "$C" --key tmp/upload >/dev/null
    wait_for "$wait" has_marker "$C" tmp/a
    wait_for "$wait" count_versions "$C" tmp/a 0
    wait_for "$wait" no_upload "$C" tmp/
    # Kept: keep/ matches no rule; long/ expires in 1000 days.
    count_versions "$C" keep/x 1 || fail "keep/x was touched"
    count_versions "$C" long/report 1 || fail "long/report was touched"
    expect_lifecycle_events "$C" tmp/a v1.lifecycle.applied v1.object.delete_marker.created v1.object.deleted
    expect_lifecycle_events "$C" tmp/upload v1.lifecycle.applied v1.multipart.aborted
}

# expect_lifecycle_events BUCKET KEY TYPE...: like expect_events, for events of the sweeper.
expect_lifecycle_events() {
    [[ -n "${DATA_DIR:-}" ]] || return 0
    local bucket="$1" key="$2" args=()
    shift 2
    for t in "$@"; do args+=(--expect "$t"); done
    "$PYTHON" "$SCENARIO_DIR/events.py" --data-dir "$DATA_DIR" --bucket "$bucket" --key "$key" --actor lifecycle \
        "${args[@]}" || fail "registry check for the sweeper's events on $bucket/$key"
}

lifecycle_spares_locked_versions() {
    ((${LIFECYCLE_DAY_SECONDS:-86400} <= 10)) \
        || skip "the server's lifecycle day is ${LIFECYCLE_DAY_SECONDS:-86400}s: nothing expires during a test run"
    s3api put-bucket-lifecycle-configuration --bucket "$L" --lifecycle-configuration \
        '{"Rules":[{"ID":"lc","Status":"Enabled","Filter":{"Prefix":"lc/"},"NoncurrentVersionExpiration":{"NoncurrentDays":1}}]}'
    local locked held free
    locked="$(put "$L" lc/a "$WORK/one" --object-lock-mode COMPLIANCE --object-lock-retain-until-date "$(future '1 day')")"
    held="$(put "$L" lc/a "$WORK/one" --object-lock-legal-hold-status ON)"
    free="$(put "$L" lc/a "$WORK/two")"
    put "$L" lc/a "$WORK/two" >/dev/null
    # The unprotected noncurrent version goes; the locked and the held one stay.
    wait_for $((LIFECYCLE_DAY_SECONDS * 6 + 10)) count_versions "$L" lc/a 3
    sleep $((LIFECYCLE_DAY_SECONDS * 3))
    local ids
    ids="$(versions_of "$L" lc/a | jq -r '[.Versions[].VersionId] | join(" ")')"
    grep -q "$locked" <<<"$ids" || fail "the COMPLIANCE version was removed"
    grep -q "$held" <<<"$ids" || fail "the held version was removed"
    if grep -q "$free" <<<"$ids"; then fail "the unprotected noncurrent version is still there"; fi
    if [[ -n "${ARTIFACT_STORE_BIN:-}" && -n "${DATA_DIR:-}" ]]; then
        local why
        why="$("$ARTIFACT_STORE_BIN" retention explain "s3://$L/lc/a" --version-id "$free" --data-dir "$DATA_DIR" --json)"
        assert_eq "$(jq -r .fate <<<"$why")" deleted "explain fate"
        assert_eq "$(jq -r '.reasons[0].event_type + " " + .reasons[0].actor' <<<"$why")" "v1.lifecycle.applied lifecycle" "explain reason"
        why="$("$ARTIFACT_STORE_BIN" retention explain "s3://$L/lc/a" --version-id "$locked" --data-dir "$DATA_DIR" --json)"
        assert_eq "$(jq -r '.fate + " " + .retention.mode' <<<"$why")" "noncurrent COMPLIANCE" "explain locked"
        grep -q 'held back' <<<"$(jq -r .lifecycle <<<"$why")" || fail "explain does not say lifecycle is held back: $why"
        local plan
        plan="$("$ARTIFACT_STORE_BIN" retention plan --data-dir "$DATA_DIR" --json)"
        jq -e --arg v "$locked" '.held | map(.effect.version_id) | index($v)' <<<"$plan" >/dev/null \
            || fail "retention plan does not hold back the locked version: $plan"
    fi
}

echo "$version_line"
run_scenario versioning-null-version versioning_null_semantics
run_scenario list-object-versions list_object_versions
run_scenario get-head-delete-copy-by-version-id version_reads_and_deletes
run_scenario object-lock-configuration lock_configuration
run_scenario object-lock-errors lock_configuration_errors
run_scenario governance-retention governance_retention
run_scenario governance-bypass-needs-permission bypass_needs_permission
run_scenario compliance-retention compliance_retention
run_scenario legal-hold legal_hold
run_scenario default-retention default_retention_applies
run_scenario lifecycle-configuration lifecycle_configuration
run_scenario lifecycle-errors lifecycle_errors
run_scenario lifecycle-sweeper lifecycle_sweeper
run_scenario lifecycle-spares-locked-versions lifecycle_spares_locked_versions
finish
