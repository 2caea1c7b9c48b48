#!/usr/bin/env python3
"""The Python vCon Server's `storage.s3` key layout, driven by boto3, for the compatibility
tests: this is how that module writes, reads and deletes (see section 4.5 of the server
reference), written out here so the tests need no copy of the server.

    python_s3.py ENDPOINT BUCKET S3_PATH save FILE...   store each vCon file
    python_s3.py ENDPOINT BUCKET S3_PATH get UUID       print the vCon as JSON, or None
    python_s3.py ENDPOINT BUCKET S3_PATH delete UUID    print True or False

S3_PATH may be empty. Credentials are moto's: any value is accepted.
"""

import json
import sys
from datetime import datetime

import boto3


def client(endpoint):
    return boto3.client(
        "s3",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        endpoint_url=endpoint,
    )


def with_prefix(s3_path, key):
    return f"{s3_path.rstrip('/')}/{key}" if s3_path else key


def save(s3, bucket, s3_path, vcon):
    # The folder is created_at's date as written (fromisoformat keeps the offset).
    date_path = datetime.fromisoformat(vcon["created_at"]).strftime("%Y/%m/%d")
    key = with_prefix(s3_path, f"{date_path}/{vcon['uuid']}.vcon")
    # The module stores its own serialisation, with no ContentType.
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(vcon))
    lookup = with_prefix(s3_path, f"lookup/{vcon['uuid']}.txt")
    s3.put_object(Bucket=bucket, Key=lookup, Body=date_path.encode())


def get(s3, bucket, s3_path, uuid):
    try:
        lookup = with_prefix(s3_path, f"lookup/{uuid}.txt")
        date_path = s3.get_object(Bucket=bucket, Key=lookup)["Body"].read().decode().strip()
        key = with_prefix(s3_path, f"{date_path}/{uuid}.vcon")
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
    except Exception:
        return None


def delete(s3, bucket, s3_path, uuid):
    try:
        lookup = with_prefix(s3_path, f"lookup/{uuid}.txt")
        date_path = s3.get_object(Bucket=bucket, Key=lookup)["Body"].read().decode().strip()
        s3.delete_object(Bucket=bucket, Key=with_prefix(s3_path, f"{date_path}/{uuid}.vcon"))
        s3.delete_object(Bucket=bucket, Key=lookup)
        return True
    except Exception:
        return False


def main(argv):
    endpoint, bucket, s3_path, command, *rest = argv
    s3 = client(endpoint)
    if command == "save":
        for path in rest:
            with open(path, encoding="utf-8") as f:
                save(s3, bucket, s3_path, json.load(f))
    elif command == "get":
        print(json.dumps(get(s3, bucket, s3_path, rest[0])))
    elif command == "delete":
        print(delete(s3, bucket, s3_path, rest[0]))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
