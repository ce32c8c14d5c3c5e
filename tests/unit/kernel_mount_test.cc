// The mount's device number from /proc/self/mountinfo (never a stat of the
// mount point: see kernel_mount.h).
#include "fuse/kernel_mount.h"

#include <gtest/gtest.h>
#include <sys/sysmacros.h>

namespace pagerfs {
namespace {

constexpr const char* kMountinfo =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "40 22 0:52 / /tmp/a\\040b rw,nosuid,nodev,relatime shared:20 - fuse.pagerfs /s rw,user_id=0,group_id=0\n"
    "41 22 0:53 / /tmp/mnt rw,nosuid,nodev,relatime shared:21 - fuse.pagerfs /s rw,user_id=0,group_id=0\n"
    "42 41 0:54 / /tmp/mnt rw,nosuid,nodev,relatime shared:22 - fuse.pagerfs /t rw,user_id=0,group_id=0\n"
    "43 22 0:55 / /tmp/mnt2 rw - tmpfs tmpfs rw\n";

TEST(KernelMount, TheNewestMountAtThePointGivesTheDevice) {
  EXPECT_EQ(mount_device_from_mountinfo(kMountinfo, "/tmp/mnt"), makedev(0, 54));
  EXPECT_EQ(mount_device_from_mountinfo(kMountinfo, "/"), makedev(8, 1));
}

TEST(KernelMount, EscapedMountPointsMatchTheirPath) {
  EXPECT_EQ(mount_device_from_mountinfo(kMountinfo, "/tmp/a b"), makedev(0, 52));
  EXPECT_EQ(mount_device_from_mountinfo(kMountinfo, "/tmp/a\\040b"), 0u);
}

TEST(KernelMount, AnUnknownPointOrMalformedLinesGiveZero) {
  EXPECT_EQ(mount_device_from_mountinfo(kMountinfo, "/tmp"), 0u);
  EXPECT_EQ(mount_device_from_mountinfo("", "/tmp/mnt"), 0u);
  EXPECT_EQ(mount_device_from_mountinfo("1 2 x:y / /tmp/mnt rw\n3 4 0:9 /", "/tmp/mnt"), 0u);
  EXPECT_EQ(mount_device_from_mountinfo("1 2 0:9 / /tmp/mnt", "/tmp/mnt"), makedev(0, 9));
}

}  // namespace
}  // namespace pagerfs
