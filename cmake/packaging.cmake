# Install rules and the Debian package (issue 14, item 1).
#
# `cmake --install build` puts, under CMAKE_INSTALL_PREFIX (GNUInstallDirs):
#   bin/blnkproxy
#   share/man/man1/blnkproxy.1.gz, share/man/man5/blnkproxy.json.5.gz   (generated: blnkproxy man 1|5)
#   share/bash-completion/completions/blnkproxy, share/zsh/vendor-completions/_blnkproxy
#                                                                        (generated: blnkproxy completion)
#   etc/blnkproxy/blnkproxy.json   (/etc/blnkproxy/... when the prefix is /usr)
#   lib/systemd/system/blnkproxy.service   (/lib/systemd/system/... when the prefix is /usr)
#   share/doc/blnkproxy/{README.md,copyright,changelog.Debian.gz}
#
# `make deb` configures build-deb with the prefix /usr and Debian's build flags and runs
# `cpack -G DEB` there: the package holds exactly what `cmake --install` installs, its Depends
# come from dpkg-shlibdeps on the linked libraries, and packaging/debian/ brings the maintainer
# scripts and the conffiles list. docs/PACKAGING.md says why CPack rather than dpkg-buildpackage.

include(GNUInstallDirs)

# Debian 12 keeps units in /lib/systemd/system (the /usr/lib move comes with Debian 13); any
# other prefix gets them under the prefix, where systemd also looks (/usr/local/lib/systemd/system).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(BP_SYSTEMD_UNITDIR_DEFAULT /lib/systemd/system)
else()
    set(BP_SYSTEMD_UNITDIR_DEFAULT lib/systemd/system)
endif()
set(BP_SYSTEMD_UNITDIR ${BP_SYSTEMD_UNITDIR_DEFAULT} CACHE STRING "where the systemd unit is installed")

# ---- generated documentation: the man pages and completions come from the binary's own tables ----

set(BP_DOC_DIR ${CMAKE_BINARY_DIR}/doc)
set(BP_MAN1 ${BP_DOC_DIR}/blnkproxy.1)
set(BP_MAN5 ${BP_DOC_DIR}/blnkproxy.json.5)
add_custom_command(
    OUTPUT ${BP_MAN1} ${BP_MAN1}.gz ${BP_MAN5} ${BP_MAN5}.gz ${BP_DOC_DIR}/blnkproxy.bash ${BP_DOC_DIR}/_blnkproxy
    COMMAND ${CMAKE_COMMAND} -E make_directory ${BP_DOC_DIR}
    COMMAND $<TARGET_FILE:blnkproxy> man 1 > ${BP_MAN1}
    COMMAND $<TARGET_FILE:blnkproxy> man 5 > ${BP_MAN5}
    # -n: no name or timestamp in the header, so the package is reproducible (lintian checks).
    COMMAND gzip -9nc ${BP_MAN1} > ${BP_MAN1}.gz
    COMMAND gzip -9nc ${BP_MAN5} > ${BP_MAN5}.gz
    COMMAND $<TARGET_FILE:blnkproxy> completion bash > ${BP_DOC_DIR}/blnkproxy.bash
    COMMAND $<TARGET_FILE:blnkproxy> completion zsh > ${BP_DOC_DIR}/_blnkproxy
    DEPENDS blnkproxy
    COMMENT "Generating the man pages and shell completions with blnkproxy itself"
    VERBATIM)

# The Debian changelog of the package version (lintian wants one; the date is the commit's).
set(BP_DEB_RELEASE 1 CACHE STRING "Debian revision of the package (the part after the dash)")
set(BP_DEB_MAINTAINER "blnkproxy maintainers <maintainers@users.noreply.b-seed-de80fba2.example>"
    CACHE STRING "Maintainer field of the Debian package")
set(BP_DEB_VERSION ${PROJECT_VERSION}-${BP_DEB_RELEASE})
set(BP_DEB_REVISION unknown)
set(BP_DEB_DATE "Thu, 01 Jan 2026 00:00:00 +0000")
find_program(GIT_EXECUTABLE git)
if(GIT_EXECUTABLE AND EXISTS ${CMAKE_SOURCE_DIR}/.git)
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${CMAKE_SOURCE_DIR} log -1 --format=%h|%aD
                    OUTPUT_VARIABLE git_line OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
    if(rc EQUAL 0 AND git_line MATCHES "^([0-9a-f]+)\\|(.+)$")
        set(BP_DEB_REVISION ${CMAKE_MATCH_1})
        set(BP_DEB_DATE ${CMAKE_MATCH_2})
    endif()
endif()
configure_file(${CMAKE_SOURCE_DIR}/packaging/debian/changelog.in ${BP_DOC_DIR}/changelog.Debian @ONLY)
add_custom_command(
    OUTPUT ${BP_DOC_DIR}/changelog.Debian.gz
    COMMAND gzip -9nc ${BP_DOC_DIR}/changelog.Debian > ${BP_DOC_DIR}/changelog.Debian.gz
    DEPENDS ${BP_DOC_DIR}/changelog.Debian
    VERBATIM)
add_custom_target(bp_docs ALL DEPENDS ${BP_MAN1}.gz ${BP_MAN5}.gz ${BP_DOC_DIR}/blnkproxy.bash
                                      ${BP_DOC_DIR}/_blnkproxy ${BP_DOC_DIR}/changelog.Debian.gz)

# ---- install rules ----

install(TARGETS blnkproxy RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${BP_MAN1}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${BP_MAN5}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${BP_DOC_DIR}/blnkproxy.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME blnkproxy)
install(FILES ${BP_DOC_DIR}/_blnkproxy DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
# GNUInstallDirs maps the /usr prefix's sysconfdir to /etc only in its FULL variable.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(BP_SYSCONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR})
else()
    set(BP_SYSCONFDIR ${CMAKE_INSTALL_SYSCONFDIR})
endif()
install(FILES ${CMAKE_SOURCE_DIR}/packaging/blnkproxy.json DESTINATION ${BP_SYSCONFDIR}/blnkproxy)
# The unit names the binary and the config by absolute path: those of this prefix.
file(READ ${CMAKE_SOURCE_DIR}/packaging/blnkproxy.service BP_UNIT_TEXT)
string(REPLACE "/usr/bin/blnkproxy" "${CMAKE_INSTALL_FULL_BINDIR}/blnkproxy" BP_UNIT_TEXT "${BP_UNIT_TEXT}")
string(REPLACE "/etc/blnkproxy/" "${CMAKE_INSTALL_FULL_SYSCONFDIR}/blnkproxy/" BP_UNIT_TEXT "${BP_UNIT_TEXT}")
file(CONFIGURE OUTPUT ${BP_DOC_DIR}/blnkproxy.service CONTENT "${BP_UNIT_TEXT}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/packaging/blnkproxy.service)
install(FILES ${BP_DOC_DIR}/blnkproxy.service DESTINATION ${BP_SYSTEMD_UNITDIR})
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/packaging/debian/copyright
              ${BP_DOC_DIR}/changelog.Debian.gz
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- the Debian package (cpack -G DEB; `make deb`) ----

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME blnkproxy)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "authenticating, auditing proxy in front of Blnk Core ledgers")
# The extended description; CPack puts the summary above it and indents each line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "blnkproxy is a self-hosted implementation of the Blnk Cloud Proxy API. Apps
call /proxy/<core path> with scoped, expiring, revocable API keys or OAuth 2.0
access tokens instead of Core's master secret; every call is checked against a
route table, forwarded to the right Blnk Core instance with that instance's
secret, recorded in an audit log and answered with Core's response unchanged.
.
The package runs it as the systemd service blnkproxy.service (user blnkproxy,
store in /var/lib/blnkproxy, configuration in /etc/blnkproxy/blnkproxy.json).")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${BP_DEB_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${BP_DEB_RELEASE})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Depends: what dpkg-shlibdeps derives from the libraries the binary links (with the minimum
# versions of Debian's symbols files), plus adduser for the postinst, and libpq5: the binary
# loads it only for a PostgreSQL store (src/store/store_pg_libpq.c), so shlibdeps cannot see it.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, libpq5")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
# 0755 scripts, 0644 conffiles, whatever the checkout's permissions are.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES TRUE)
include(CPack)
