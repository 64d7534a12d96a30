#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: console_download
short_description: Download an agent artifact from the HyperMotion console, token kept secret
version_added: 0.1.0
description:
  - Fetches one artifact (dattobd source, a prebuilt module, the agent package, the monitor and
    its certificate and key) from the console's download endpoint, the way the vendor installer
    does (C(/hypermotion/v1/sources/download?type=KIND&name=NAME&id=TOKEN)).
  - The token is a C(no_log) option, so it is masked in every result, log and error at any
    verbosity; the URL is only ever reported without it.
  - TLS is verified by default against O(ca_path) or the system bundle. Every failure says what
    went wrong and what to do (token refused, artifact missing, console down, unknown CA,
    certificate for another host, checksum mismatch) and leaves O(dest) untouched.
  - Idempotent. With O(checksum) an existing O(dest) that matches is not downloaded again; without
    it the download goes to a temporary file and replaces O(dest) only when the content differs.
author:
  - HyperMotion Linux Agent engineers (@hypermotion)
extends_documentation_fragment:
  - hypermotion.linux_agent.attributes
attributes:
  check_mode:
    support: partial
    details:
      - In check mode nothing is downloaded; the console is asked with C(HEAD), so C(found) and failures are real.
      - It reports a change when O(dest) is missing or does not match O(checksum).
  diff_mode:
    support: none
options:
  console_url:
    description: Base URL of the console, for example V(https://192.168.7.122:10443).
    type: str
    required: true
  token:
    description: Download token (the C(id=) of the installer's URL). Never logged.
    type: str
    required: true
  kind:
    description: Artifact type (C(type=) query parameter), for example V(linux).
    type: str
    default: linux
  artifact:
    description:
      - Artifact name on the console (C(name=) query parameter).
      - With O(path_style=true), a path below C(/hypermotion/v1/).
    type: str
    required: true
  path_style:
    description: Address the artifact as C(/hypermotion/v1/ARTIFACT?id=TOKEN) instead of the download endpoint.
    type: bool
    default: false
  dest:
    description: Where to store the file on the host.
    type: path
    required: true
  checksum:
    description:
      - Expected SHA-256 of the artifact (hex, optionally prefixed V(sha256:)).
      - Verified before the file is moved into place.
    type: str
  missing_ok:
    description:
      - Report C(found=false) instead of failing when the console answers 404 (to probe for a prebuilt module).
    type: bool
    default: false
  validate_certs:
    description: Verify the console's TLS certificate. Turning it off prints a warning on every run.
    type: bool
    default: true
  ca_path:
    description: PEM bundle of the CA that signed the console's certificate.
    type: path
  mode:
    description: File mode of O(dest).
    type: raw
    default: "0644"
  timeout:
    description: Seconds to wait for the console.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Download the dattobd source from the console
  hypermotion.linux_agent.console_download:
    console_url: "{{ linux_agent_console_url }}"
    token: "{{ linux_agent_console_token }}"
    artifact: dattobd-0.12.1.tar.gz
    checksum: "{{ dattobd_source_sha256 }}"
    dest: /var/cache/hypermotion-linux-agent/dattobd-0.12.1.tar.gz
    ca_path: /etc/hypermotion/console-ca.pem

- name: Probe for a prebuilt module for this kernel
  hypermotion.linux_agent.console_download:
    console_url: "{{ linux_agent_console_url }}"
    token: "{{ linux_agent_console_token }}"
    artifact: modules/{{ ansible_facts['kernel'] }}/dattobd.ko
    path_style: true
    dest: /var/cache/hypermotion-linux-agent/prebuilt/{{ ansible_facts['kernel'] }}/dattobd.ko
    missing_ok: true
"""

RETURN = r"""
found:
  description: Whether the console has the artifact (false only with O(missing_ok) and a 404).
  returned: always
  type: bool
url:
  description: The URL fetched, without the token.
  returned: always
  type: str
sha256:
  description: SHA-256 of the file at O(dest).
  returned: when found
  type: str
dest:
  description: The destination path.
  returned: always
  type: str
"""

import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode
from ansible.module_utils.urls import fetch_url

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _console, _host


def main():
    module = AnsibleModule(
        argument_spec=dict(
            console_url=dict(type="str", required=True),
            token=dict(type="str", required=True, no_log=True),
            kind=dict(type="str", default="linux"),
            artifact=dict(type="str", required=True),
            path_style=dict(type="bool", default=False),
            dest=dict(type="path", required=True),
            checksum=dict(type="str"),
            missing_ok=dict(type="bool", default=False),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            mode=dict(type="raw", default="0644"),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        expected = _console.normalise_checksum(params["checksum"])
        base = _console.normalise_console_url(params["console_url"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if params["path_style"]:
        public_url = "%s/hypermotion/v1/%s" % (base, quote(params["artifact"].lstrip("/")))
        query = urlencode({"id": params["token"]})
    else:
        public_url = "%s/hypermotion/v1/sources/download?%s" % (
            base, urlencode({"type": params["kind"], "name": params["artifact"]}))
        query = urlencode({"id": params["token"]})
    url = public_url + ("&" if "?" in public_url else "?") + query
    dest = params["dest"]
    result = dict(changed=False, found=True, url=public_url, dest=dest)

    if not params["validate_certs"]:
        module.warn("TLS verification of the console is turned off (validate_certs=false): the downloads "
                    "could come from anyone on the network path. Set the console's CA bundle instead.")
    if base.lower().startswith("http://"):
        # The role refuses http:// unless linux_agent_console_allow_http is true; the module says it every time.
        module.warn("The console URL is http:// (linux_agent_console_allow_http): the download token and the "
                    "files travel in clear text. Use the console's https:// URL.")
    if params["ca_path"] and not os.path.isfile(params["ca_path"]):
        module.fail_json(msg="The console CA bundle %s does not exist on the host; copy it there first or "
                             "point ca_path at the right file." % params["ca_path"], **result)

    if expected and os.path.isfile(dest) and _host.file_sha256(dest) == expected:
        result["sha256"] = expected
        result["changed"] = module.set_fs_attributes_if_different(
            module.load_file_common_arguments(dict(path=dest, mode=params["mode"])), False)
        module.exit_json(**result)
    # Check mode asks the console with HEAD: the answer (found, token refused, ...) is what a real run
    # would get, and nothing is written to the host.
    response, info = fetch_url(
        module, url, timeout=params["timeout"], ca_path=params["ca_path"],
        headers={"Accept": "application/octet-stream"}, method="HEAD" if module.check_mode else "GET",
    )
    status = info.get("status", -1)
    if status != 200:
        if status == 404 and params["missing_ok"]:
            result["found"] = False
            module.exit_json(**result)
        module.fail_json(msg=_console.explain_failure(status, info.get("msg", ""), public_url,
                                                      params["artifact"]), status=status, **result)
    if module.check_mode:
        # Without a checksum the content cannot be compared without downloading it: an existing file
        # counts as current, a missing one as a change.
        result["changed"] = not os.path.isfile(dest) or bool(expected)
        module.exit_json(**result)

    parent = os.path.dirname(dest) or "."
    if not os.path.isdir(parent):
        module.fail_json(msg="The directory %s for %s does not exist." % (parent, dest), **result)
    handle, tmp = tempfile.mkstemp(dir=parent, prefix=".%s." % os.path.basename(dest))
    try:
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        got = _host.file_sha256(tmp)
        if expected and got != expected:
            module.fail_json(
                msg="Checksum mismatch for %s: the console sent sha256 %s, expected %s. The file was not "
                    "used. Check the checksum variable for this version, or the console's copy." % (
                        params["artifact"], got, expected),
                **result
            )
        if os.path.isfile(dest) and _host.file_sha256(dest) == got:
            os.unlink(tmp)
        else:
            module.atomic_move(tmp, dest)
            result["changed"] = True
        result["sha256"] = got
        file_args = module.load_file_common_arguments(dict(path=dest, mode=params["mode"]))
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
