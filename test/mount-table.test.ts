// Invariant: the mount table is read right: our mounts are found by mount point (octal escapes undone) with the
// pid of the daemon serving them, and other file systems carry no pid (cleanStaleMount never detaches them).
// Fails if parseMountInfo splits an escaped mount point or takes another file system's source for ours.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MOUNT_FSTYPE, mountAt, parseMountInfo } from '#presto/mount-table.js';

const TABLE = [
  '22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '44 22 0:39 / /tmp/a\\040b/mnt rw,nosuid,nodev,relatime shared:2 - fuse.intersync intersync\\0437886 rw,user_id=0,group_id=0',
  '45 22 0:40 / /mnt/other rw,relatime - fuse.sshfs intersync#123 rw',
  '46 22 0:41 / /tmp/a\\040b/mnt rw,relatime - fuse.intersync intersync#99 rw',
  'garbage line',
].join('\n');

test('parseMountInfo: mount points unescaped, pids only for our file system type', () => {
  const rows = parseMountInfo(TABLE);
  assert.deepEqual(rows.map((r) => [r.mountpoint, r.fstype, r.pid]), [
    ['/', 'ext4', null],
    ['/tmp/a b/mnt', MOUNT_FSTYPE, 7886],
    ['/mnt/other', 'fuse.sshfs', null],
    ['/tmp/a b/mnt', MOUNT_FSTYPE, 99],
  ]);
});

test('mountAt: the last of stacked mounts; none for a path that is not a mount point', () => {
  assert.equal(mountAt('/tmp/a b/mnt', TABLE)?.pid, 99);
  assert.equal(mountAt('/tmp/a b', TABLE), null);
  assert.equal(mountAt('/mnt/other', TABLE)?.fstype, 'fuse.sshfs');
});
