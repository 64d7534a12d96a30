# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers for talking to the HyperMotion console: URL and checksum checks, error wording."""

from __future__ import annotations

import re

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def normalise_checksum(value):
    """Lower-case hex SHA-256 from ``value`` (``sha256:`` prefix allowed), None when empty."""
    if not value:
        return None
    text = value.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:"):]
    if not _SHA256.match(text):
        raise ValueError("checksum %r is not a SHA-256 (64 hex digits, optionally prefixed sha256:)" % (value,))
    return text


def normalise_console_url(value):
    """``https://host:port`` without a trailing slash; refuses anything but http(s) URLs."""
    text = (value or "").strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError(
            "console URL %r is not an http(s) URL such as https://192.168.7.122:10443; set "
            "linux_agent_console_url to the console address shown in its download page" % (value,)
        )
    return text


def explain_failure(status, message, url, artifact):
    """An operator-facing explanation of a failed download (never contains the token)."""
    lowered = (message or "").lower()
    if status in (401, 403):
        return ("The console refused the download token (HTTP %s) for %s. The token is wrong or expired: copy a "
                "fresh one from the console's Linux agent download page into linux_agent_console_token." % (
                    status, url))
    if status == 404:
        return ("The console has no artifact %r (HTTP 404 from %s). Check the version variables against what the "
                "console offers." % (artifact, url))
    if status >= 500:
        return ("The console failed with HTTP %s for %s. Nothing was changed on the host; retry later or check the "
                "console's health." % (status, url))
    if "certificate verify failed" in lowered or "unable to get local issuer" in lowered or "self-signed" in lowered \
            or "self signed" in lowered:
        if "hostname" in lowered or "doesn't match" in lowered or "not valid for" in lowered:
            return ("TLS: the console's certificate is not valid for the host in %s (%s). Use the host name or address "
                    "the certificate was issued for in linux_agent_console_url." % (url, message))
        return ("TLS: the console's certificate is signed by an unknown CA (%s). Put the console CA's PEM file on "
                "the controller and set linux_agent_console_ca to it." % (message,))
    if "hostname" in lowered and ("match" in lowered or "mismatch" in lowered):
        return ("TLS: the console's certificate is not valid for the host in %s (%s). Use the host name or address "
                "the certificate was issued for in linux_agent_console_url." % (url, message))
    if status == -1:
        return ("Cannot reach the console at %s: %s. Check linux_agent_console_url, that the console is up, and that "
                "this host can reach it (firewall, proxy)." % (url, message))
    return "The console answered HTTP %s for %s: %s" % (status, url, message)
