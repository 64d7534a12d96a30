# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _console

DIGEST = "a" * 64


@pytest.mark.parametrize(
    "value, expected",
    [(None, None), ("", None), (DIGEST, DIGEST), ("sha256:" + DIGEST.upper(), DIGEST)],
)
def test_normalise_checksum(value, expected):
    assert _console.normalise_checksum(value) == expected


@pytest.mark.parametrize("value", ["md5:abc", "a" * 63, "sha1:" + "a" * 40])
def test_normalise_checksum_refuses(value):
    with pytest.raises(ValueError, match="not a SHA-256"):
        _console.normalise_checksum(value)


def test_console_url():
    assert _console.normalise_console_url(" https://10.0.2.2:8443/ ") == "https://10.0.2.2:8443"
    with pytest.raises(ValueError, match="linux_agent_console_url"):
        _console.normalise_console_url("10.0.2.2:8443")


URL = "https://127.0.0.1:8443/hypermotion/v1/sources/download?type=linux&name=x"


@pytest.mark.parametrize(
    "status, message, needle",
    [
        pytest.param(401, "HTTP Error 401: Unauthorized", "refused the download token", id="401"),
        pytest.param(404, "HTTP Error 404: Not Found", "has no artifact", id="404"),
        pytest.param(500, "HTTP Error 500", "failed with HTTP 500", id="500"),
        pytest.param(-1, "Request failed: <urlopen error [Errno 111] Connection refused>", "Cannot reach",
                     id="connection refused"),
        pytest.param(-1, "Request failed: <urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                         "failed: self-signed certificate in certificate chain (_ssl.c:1006)>", "unknown CA",
                     id="unknown CA"),
        pytest.param(-1, "Request failed: <urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                         "failed: Hostname mismatch, certificate is not valid for '127.0.0.1'. (_ssl.c:1006)>",
                     "not valid for the host", id="wrong hostname"),
    ],
)
def test_explain_failure(status, message, needle):
    text = _console.explain_failure(status, message, URL, "x")
    assert needle in text
    assert "id=" not in text
