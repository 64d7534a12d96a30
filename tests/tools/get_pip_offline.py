# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the get-pip.py that ansible-test downloads from ci-files.testing.ansible.com.

That host is unreachable here (only PyPI is), so `make sanity` places this file where
ansible-test caches the download (~/.ansible/test/cache/get_pip_<version>.py). ansible-test
runs it as __main__ with pip-install arguments plus get-pip's own --no-setuptools/--no-wheel:
bootstrap pip from the interpreter's bundled ensurepip, then let pip install what was asked.
"""

from __future__ import annotations

import ensurepip
import os
import runpy
import sys

GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main():
    ensurepip.bootstrap(upgrade=False)
    arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    # The freshly bootstrapped pip does not pick up the machine's TLS-intercepting CA from the
    # pip.conf ansible-test's environment leaves it; hand the system bundle over explicitly.
    bundle = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    if os.path.isfile(bundle) and "--cert" not in arguments:
        arguments = ["--cert", bundle] + arguments
    sys.argv = ["pip", "install"] + arguments
    runpy.run_module("pip", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
