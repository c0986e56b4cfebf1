#ifndef BP_LIB_VERSION_H
#define BP_LIB_VERSION_H

/* What this binary is: the release version (CMake's project version) and the git revision it
 * was built from (12 hex digits of the commit, or "unknown" when built without git metadata,
 * e.g. from a tarball). Both are static strings. */
const char *bp_version_get(void);
const char *bp_version_revision(void);

#endif
