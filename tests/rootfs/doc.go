// Package rootfs gives tests real root filesystem trees and an exact
// listing of a tree to compare before and after.
package rootfs
