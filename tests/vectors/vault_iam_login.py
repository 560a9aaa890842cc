#!/usr/bin/env python3
"""Known-good vectors for the Vault AWS IAM login (src/adapters/vault/auth.rs, tests).

Signs the same sts:GetCallerIdentity POST the broker signs, with botocore's SigV4Auth (the
signer of the AWS CLI and of hvac's iam_login), fixed credentials and a fixed clock, and prints
the Authorization header and the base64 login fields. Headers are encoded as the broker encodes
them: a JSON map name -> [value], keys sorted, no spaces.

    python3 -m venv /tmp/botovenv && /tmp/botovenv/bin/pip install botocore
    /tmp/botovenv/bin/python tests/vectors/vault_iam_login.py
"""
import base64
import datetime
import json
from unittest import mock

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"
NOW = datetime.datetime(2015, 8, 30, 12, 36, 0)  # 1440938160 s after the epoch, UTC
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"

CASES = [
    # name, region, host, session token, server id
    ("global", "us-east-1", "sts.amazonaws.com", None, None),
    ("regional", "eu-west-1", "sts.eu-west-1.amazonaws.com", SESSION_TOKEN, "vault.example.com"),
]


def b64(text):
    return base64.b64encode(text.encode()).decode()


for name, region, host, token, server_id in CASES:
    url = f"https://{host}/"
    headers = {"Content-Type": CONTENT_TYPE, "Host": host}
    if server_id:
        headers["X-Vault-AWS-IAM-Server-ID"] = server_id
    request = AWSRequest(method="POST", url=url, data=BODY, headers=headers)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=NOW):
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), "sts", region).add_auth(request)
    signed = {k: [v] for k, v in request.headers.items()}
    headers_json = json.dumps(signed, sort_keys=True, separators=(",", ":"))
    print(f"== {name}")
    print(f"authorization: {request.headers['Authorization']}")
    print(f"iam_request_url: {b64(url)}")
    print(f"iam_request_body: {b64(BODY)}")
    print(f"iam_request_headers: {b64(headers_json)}")
    print(f"headers json: {headers_json}")
