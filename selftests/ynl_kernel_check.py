#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Compares the running kernel's permtcp family with its YAML spec, through YNL.

The kernel side comes from the generic netlink controller (nlctrl): the family's commands,
whether each has a do and a dump handler, its permission flag, and the attribute policy
genetlink enforces for each (CTRL_CMD_GETPOLICY).  The spec must say the same: the same
operations and modes, uns-admin-perm exactly where the kernel checks CAP_NET_ADMIN over the
namespace, and for each request the attributes, types and checks of the kernel's policy.
Prints one line per difference; exits 1 when there is any.

    ynl_kernel_check.py YNL_DIR PERMTCP_SPEC
"""

import sys

sys.path.insert(0, sys.argv[1] + '/pyynl')
# pylint: disable=wrong-import-position
from lib import YnlFamily  # noqa: E402

SPEC = sys.argv[2]
NLCTRL = sys.argv[1] + '/specs/nlctrl.yaml'

# Spec attribute type -> the kernel's policy type as nlctrl names it.
POLICY_TYPE = {'u8': 'u8', 'u16': 'u16', 'u32': 'u32', 'u64': 'u64', 'flag': 'flag',
               'binary': 'binary', 'nest': 'nested', 'string': 'nul-string'}
UNSIGNED_MAX = {'u8': 0xff, 'u16': 0xffff, 'u32': 0xffffffff, 'u64': 0xffffffffffffffff}


def expected_policy(attr):
    """What the kernel's policy dump should show for one spec attribute."""
    want = {'type': POLICY_TYPE[attr['type']]}
    checks = attr.yaml.get('checks', {})
    if attr['type'] in UNSIGNED_MAX:
        want['min-value'] = checks.get('min', 0)
        want['max-value'] = checks.get('max', UNSIGNED_MAX[attr['type']])
    if 'exact-len' in checks:
        want['min-length'] = want['max-length'] = checks['exact-len']
    return want


def main():
    """Prints the differences; returns the exit status."""
    ynl = YnlFamily(SPEC, schema='')
    ctrl = YnlFamily(NLCTRL, schema='')
    fam = ctrl.do('getfamily', {'family-name': ynl.yaml['name']})
    # An indexed array: [{index: {'id': command, 'flags': {names}}}, ...].
    kernel_ops = {o['id']: o['flags'] for item in fam['ops'] for o in item.values()}
    errors = []

    if fam['version'] != ynl.yaml.get('version', 1):
        errors.append(f"family version {fam['version']}, spec {ynl.yaml.get('version', 1)}")
    spec_ops = {op.req_value: op for op in ynl.ops.values() if op.modes}
    for value in sorted(set(kernel_ops) | set(spec_ops)):
        if value not in spec_ops:
            errors.append(f'command {value} is in the kernel, not in the spec')
            continue
        op = spec_ops[value]
        if value not in kernel_ops:
            errors.append(f'{op.name}: in the spec, not in the kernel')
            continue
        flags = kernel_ops[value]
        for mode in ('do', 'dump'):
            if (f'cmd-cap-{mode}' in flags) != (mode in op.yaml):
                errors.append(f"{op.name}: kernel {mode} handler {f'cmd-cap-{mode}' in flags}, "
                              f"spec {mode in op.yaml}")
        for perm in ('admin-perm', 'uns-admin-perm'):
            if (perm in flags) != (perm in op.yaml.get('flags', [])):
                errors.append(f'{op.name}: {perm} kernel {perm in flags}, '
                              f"spec {perm in op.yaml.get('flags', [])}")
        for mode in op.modes:
            names = op.yaml[mode].get('request', {}).get('attributes', [])
            want = {n: expected_policy(op.attr_set[n]) for n in names}
            pol = ynl.get_policy(op.name, mode)
            got = pol.to_dict() if pol else {}
            got = {n: {k: v for k, v in p.items() if k != 'policy-idx'} for n, p in got.items()}
            if got != want:
                errors.append(f'{op.name} {mode}: kernel policy {got}, spec {want}')
    for e in errors:
        print(e)
    print(f'{len(spec_ops)} operations compared, {len(errors)} differences')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
