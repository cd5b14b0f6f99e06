#!/usr/bin/env python3
"""Writes the xml_bodies seed corpus: the request bodies of AWS's S3 API reference examples,
one or more per document type the gateway accepts. Byte 0 is the type index of the target.
Run from fuzz/."""
import os

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
DOCS = {
    0: [f"""<CompleteMultipartUpload {NS}>
  <Part><PartNumber>1</PartNumber><ETag>"a54357aff0632cce46d942af68356b38"</ETag></Part>
  <Part><PartNumber>2</PartNumber><ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag><ChecksumCRC32>NhCmhg==</ChecksumCRC32></Part>
  <Part><PartNumber>3</PartNumber><ETag>"acbd18db4cc2f85cedef654fccc4a4d8"</ETag></Part>
</CompleteMultipartUpload>"""],
    1: [f"""<?xml version="1.0" encoding="UTF-8"?>
<Delete {NS}>
  <Quiet>true</Quiet>
  <Object><Key>sample1.txt</Key></Object>
  <Object><Key>sample2.txt</Key><VersionId>OYcLXagmS.WaD..oyH4KRguB95_YhLs7</VersionId></Object>
  <Object><Key>a&amp;b &lt;c&gt;</Key><ETag>"abc"</ETag></Object>
</Delete>"""],
    2: [f"""<LifecycleConfiguration {NS}>
  <Rule>
    <ID>id1</ID>
    <Filter><Prefix>documents/</Prefix></Filter>
    <Status>Enabled</Status>
    <Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition>
  </Rule>
  <Rule>
    <ID>id2</ID>
    <Filter><And><Prefix>logs/</Prefix><Tag><Key>key1</Key><Value>value1</Value></Tag><ObjectSizeGreaterThan>500</ObjectSizeGreaterThan></And></Filter>
    <Status>Enabled</Status>
    <Expiration><Date>2030-01-01T00:00:00.000Z</Date></Expiration>
    <NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays><NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration>
    <AbortIncompleteMultipartUpload><DaysAfterInitiation>3</DaysAfterInitiation></AbortIncompleteMultipartUpload>
  </Rule>
  <Rule>
    <ID>markers</ID>
    <Filter></Filter>
    <Status>Disabled</Status>
    <Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>
  </Rule>
</LifecycleConfiguration>"""],
    3: [f"""<ObjectLockConfiguration {NS}>
  <ObjectLockEnabled>Enabled</ObjectLockEnabled>
  <Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule>
</ObjectLockConfiguration>""",
        """<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>2</Years></DefaultRetention></Rule></ObjectLockConfiguration>"""],
    4: [f"""<Tagging {NS}>
  <TagSet>
    <Tag><Key>tag1</Key><Value>val1</Value></Tag>
    <Tag><Key>tag2</Key><Value></Value></Tag>
  </TagSet>
</Tagging>"""],
    5: [f"""<VersioningConfiguration {NS}><Status>Enabled</Status></VersioningConfiguration>""",
        f"""<VersioningConfiguration {NS}><Status>Suspended</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>"""],
    6: [f"""<Retention {NS}><Mode>GOVERNANCE</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>"""],
    7: [f"""<LegalHold {NS}><Status>ON</Status></LegalHold>"""],
    8: [f"""<CreateBucketConfiguration {NS}><LocationConstraint>us-west-2</LocationConstraint></CreateBucketConfiguration>"""],
}
NAMES = ["complete-multipart", "delete", "lifecycle", "object-lock", "tagging", "versioning", "retention",
         "legal-hold", "create-bucket"]

os.makedirs("corpus/xml_bodies", exist_ok=True)
for kind, docs in DOCS.items():
    for n, doc in enumerate(docs):
        with open(f"corpus/xml_bodies/{kind}-{NAMES[kind]}-{n}", "wb") as f:
            f.write(bytes([kind]) + doc.encode())
