// The lab most live tests start from: R masquerades out of r-out to ports 50000-50009 (10 NAT
// ports per destination) and the server listens on TCP :80.
import { createLab, type Lab } from '../../src/lab/topology.js';

export const NAT_PORTS_RULE =
  'table ip nat {\n chain post {\n  type nat hook postrouting priority 100;\n  oifname "r-out" meta l4proto { tcp, udp } masquerade to :50000-50009\n }\n}\n';

export async function natLab(prefix: string): Promise<Lab> {
  const lab = await createLab({ prefix });
  try {
    await lab.nft(lab.router, NAT_PORTS_RULE);
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']).ready;
    return lab;
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}
