#ifndef BP_SERVE_SERVE_H
#define BP_SERVE_SERVE_H

/* `blnkproxy serve`: wires configuration, store, shared tables, watcher and HTTP workers, and
 * runs until SIGTERM or SIGINT. argv holds the arguments after "serve". Returns the exit code. */
int bp_serve_main(int argc, char **argv);

#endif
