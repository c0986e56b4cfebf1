#include "lib/version.h"

/* bp_revision.h is generated into the build directory on every build by cmake/revision.cmake;
 * this is the only file that includes it, so a new commit recompiles only this file. */
#include "bp_revision.h"

const char *
bp_version_get(void)
{
    return BP_VERSION;
}

const char *
bp_version_revision(void)
{
    return BP_REVISION;
}
