/* Scaffold: replaced by the audit command implementation. */
#include "cli/cli-int.h"

int
bp_cli__cmd_audit(struct bp_cli_ctx *ctx, int argc, char **argv)
{
    bp_cli__error("audit commands are not built yet");
    return BP_CLI_EXIT_FAIL;
}
