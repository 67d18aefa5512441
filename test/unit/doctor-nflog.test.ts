// doctor's nflog-groups check over parsed /proc tables: who holds each group the ruleset logs to.
import { describe, expect, it } from 'vitest';
import { nflogGroups } from '../../src/doctor/checks-nflog.js';
import { parseNetlinkTable, parseNfnetlinkLog } from '../../src/source/nflog-bindings.js';

describe('nflog-groups', () => {
  it('parses the kernel tables', () => {
    // group portid queue copy_mode copy_range flush_timeout use
    expect(parseNfnetlinkLog('    7   4242     0 2 65535    100  1\n    9  -1\n')).toEqual(new Map([[7, 4242]]));
    const netlink = 'sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n' +
      '0000000000000000 12  4242       00000000 0        0        0     2        0        99123\n' +
      '0000000000000000 0   1          00000551 0        0        0     2        0        11\n';
    expect(parseNetlinkTable(netlink)).toEqual([{ portId: 4242, groups: 0, drops: 0, inode: 99123 }]);
  });

  it('warns when another program holds a group, is ok when natwatch does', () => {
    const other = nflogGroups({ groups: [5, 7], holders: new Map([[5, { pid: 10, name: 'natwatch' }], [7, { pid: 11, name: 'ulogd' }]]) });
    expect(other.verdict).toBe('warn');
    expect(other.finding).toBe('group 5: held by natwatch (pid 10); group 7: held by ulogd (pid 11). natwatch cannot see packets of a group another program holds: it runs without them and retries the bind every 30 s');
    expect(nflogGroups({ groups: [5], holders: new Map([[5, { pid: 10, name: 'natwatch' }]]) })).toMatchObject({ verdict: 'ok', finding: 'group 5: held by natwatch (pid 10)' });
    expect(nflogGroups({ groups: [5], holders: new Map() })).toMatchObject({ verdict: 'info', finding: "group 5: not bound (logged packets go nowhere); 'natwatch serve' binds them when it runs" });
    expect(nflogGroups({ groups: [], holders: new Map() })).toMatchObject({ verdict: 'ok' });
    expect(nflogGroups(undefined)).toMatchObject({ verdict: 'info' });
  });
});
