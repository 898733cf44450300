"""The SigV4 signer against AWS's published values: the independent oracle is the data below, copied from
AWS's documentation, never computed by the code under test.

Sources (the request, and each expected canonical request, string to sign, signing key or signature):

- AWS's Signature Version 4 test suite (aws-sig-v4-test-suite, published with the SigV4 documentation,
  https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html): the cases ``get-vanilla``,
  ``get-vanilla-query-order-key-case``, ``get-utf8`` and ``post-x-www-form-urlencoded``; access key
  ``AKIDEXAMPLE``, region us-east-1, service ``service``, 2015-08-30 12:36:00 UTC.
- The worked example of "Signature Version 4 signing process" (IAM ``ListUsers``;
  https://docs.aws.amazon.com/general/latest/gr/sigv4-create-canonical-request.html,
  .../sigv4-create-string-to-sign.html, .../sigv4-calculate-signature.html): the hash of its canonical
  request, its derived signing key and its signature.
- Amazon S3's "Authenticating Requests: Using the Authorization Header (AWS Signature Version 4)",
  "Example: PUT Object" (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html):
  access key ``AKIAIOSFODNN7EXAMPLE``, bucket ``examplebucket``, 2013-05-24 00:00:00 UTC.
"""

import hashlib
from datetime import UTC, datetime

import pytest

from services.worker.workflows.blocks.sinks import sigv4

SUITE_CREDENTIALS = sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = "20150830T123600Z"
SUITE_SCOPE = "20150830/us-east-1/service/aws4_request"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # the suite's hash of no body
SUITE_HEADERS = {"Host": "example.amazonaws.com", "X-Amz-Date": SUITE_TIME}

# (case, method, canonical URI, query pairs, extra headers, body,
#  published canonical request, published string to sign, published signature)
SUITE = [
    ("get-vanilla", "GET", "/", [], {}, b"",
     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + EMPTY_SHA256,
     "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query-order-key-case", "GET", "/", [("Param2", "value2"), ("Param1", "value1")], {}, b"",
     "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
     "host;x-amz-date\n" + EMPTY_SHA256,
     None,
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("get-utf8", "GET", sigv4.uri_encode("/\u1234", keep_slash=True), [], {}, b"",
     "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + EMPTY_SHA256,
     "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
     "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("post-x-www-form-urlencoded", "POST", "/", [], {"Content-Type": "application/x-www-form-urlencoded"},
     b"Param1=value1",
     "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
     "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
     "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
     "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
]


@pytest.mark.parametrize(("case", "method", "uri", "query", "headers", "body", "request_text", "to_sign",
                          "signature"), SUITE, ids=[case[0] for case in SUITE])
def test_the_aws_test_suite(case: str, method: str, uri: str, query: list[tuple[str, str]], headers: dict[str, str],
                            body: bytes, request_text: str, to_sign: str | None, signature: str) -> None:
    signed = sigv4.sign(method, uri, sigv4.canonical_query(query), {**SUITE_HEADERS, **headers},
                        hashlib.sha256(body).hexdigest(), SUITE_CREDENTIALS, "us-east-1", "service", SUITE_TIME)

    assert signed.canonical_request == request_text
    if to_sign is not None:
        assert signed.string_to_sign == to_sign
    assert signed.signature == signature
    assert signed.authorization == (f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{SUITE_SCOPE}, "
                                    f"SignedHeaders={request_text.split(chr(10))[-2]}, Signature={signature}")


def test_the_signing_process_example_iam_list_users() -> None:
    signed = sigv4.sign("GET", "/", sigv4.canonical_query([("Action", "ListUsers"), ("Version", "2010-05-08")]),
                        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                         "Host": "iam.amazonaws.com", "X-Amz-Date": SUITE_TIME},
                        EMPTY_SHA256, SUITE_CREDENTIALS, "us-east-1", "iam", SUITE_TIME)

    assert signed.canonical_request == (
        "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
        "content-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n" + EMPTY_SHA256)
    assert hashlib.sha256(signed.canonical_request.encode()).hexdigest() == (
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59")
    assert signed.string_to_sign == ("AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n"
                                     "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59")
    assert sigv4.signing_key(SUITE_CREDENTIALS.secret_access_key, "20150830", "us-east-1", "iam").hex() == (
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
    assert signed.authorization == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")


def test_the_s3_put_object_example() -> None:
    body = b"Welcome to Amazon S3."
    payload_hash = hashlib.sha256(body).hexdigest()
    when = sigv4.amz_date(datetime(2013, 5, 24, tzinfo=UTC).timestamp())
    signed = sigv4.sign("PUT", "/" + sigv4.uri_encode("test$file.text", keep_slash=True), "",
                        {"Host": "examplebucket.s3.amazonaws.com", "Date": "Fri, 24 May 2013 00:00:00 GMT",
                         "x-amz-date": when, "x-amz-storage-class": "REDUCED_REDUNDANCY",
                         "x-amz-content-sha256": payload_hash},
                        payload_hash, sigv4.Credentials("AKIAIOSFODNN7EXAMPLE",
                                                        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                        "us-east-1", "s3", when)

    assert payload_hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    assert signed.canonical_request == (
        "PUT\n/test%24file.text\n\n"
        "date:Fri, 24 May 2013 00:00:00 GMT\nhost:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
        "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
    assert signed.string_to_sign == (
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d")
    assert signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"


def test_header_values_are_trimmed_and_their_spaces_collapsed() -> None:
    # The canonical form the documentation gives ("Trimall"): leading, trailing and repeated spaces go.
    lines, signed = sigv4.canonical_headers([("My-Header1", "  a   b   c  "), ("Host", "h"), ("my-header1", "d")])

    assert lines == "host:h\nmy-header1:a b c,d\n"
    assert signed == "host;my-header1"


def test_uri_encoding_keeps_only_the_unreserved_characters() -> None:
    assert sigv4.uri_encode("a b+c/d~e_f.g-h*", keep_slash=True) == "a%20b%2Bc/d~e_f.g-h%2A"
    assert sigv4.uri_encode("a/b") == "a%2Fb"
    assert sigv4.canonical_query([("b", "2"), ("a", "x y"), ("a", "+")]) == "a=%2B&a=x%20y&b=2"


def test_the_credentials_repr_shows_no_secret() -> None:
    shown = repr(sigv4.Credentials("AKID", "the-secret", "the-token"))

    assert "AKID" in shown and "the-secret" not in shown and "the-token" not in shown
