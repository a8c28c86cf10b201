#!/bin/sh
# One-shot MinIO setup of the cluster compose file (service minio-init, image minio/mc): the uploads bucket and an
# application user allowed only its objects. Idempotent: every step succeeds when already done.
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "local/$RAG_BUCKET"
policy=/tmp/ragstack-bucket.json
cat > "$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": ["arn:aws:s3:::$RAG_BUCKET"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
     "Resource": ["arn:aws:s3:::$RAG_BUCKET/*"]}
  ]
}
JSON
mc admin policy create local ragstack-bucket "$policy"
mc admin user add local "$MINIO_APP_USER" "$MINIO_APP_PASSWORD"
mc admin policy attach local ragstack-bucket --user "$MINIO_APP_USER" || true  # already attached: not an error
echo "minio-init: bucket $RAG_BUCKET and user $MINIO_APP_USER ready"
