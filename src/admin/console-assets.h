#ifndef BP_ADMIN_CONSOLE_ASSETS_H
#define BP_ADMIN_CONSOLE_ASSETS_H

#include <stddef.h>

/* The console's files as the build embedded them (cmake/embed.cmake, from src/admin/console/). */
struct bp_console_asset {
    const char *path;          /* "/admin/console.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
};

extern const struct bp_console_asset bp_console_assets[];
extern const size_t bp_console_assets_n;

#endif
