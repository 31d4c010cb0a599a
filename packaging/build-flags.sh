# Sourced by scripts/setup.sh: Debian's build flags for the optimized build, as
# debian/rules sets them (keep the two in step) and as debhelper hands them to CMake
# (CPPFLAGS after CFLAGS/CXXFLAGS).
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
export DEB_CPPFLAGS_MAINT_APPEND=-DNDEBUG
QP_CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
QP_CXXFLAGS="$(dpkg-buildflags --get CXXFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
QP_LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
unset DEB_BUILD_MAINT_OPTIONS DEB_CPPFLAGS_MAINT_APPEND
