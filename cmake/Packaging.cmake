# Debian packages (CPack's DEB generator): `make package` writes them to BUILD/packages.
#   handoff      the broker, intake, triage, scheduling and the portal (handoff-web), their
#                systemd units (deploy/systemd), the defaults under /etc/handoff (conffiles)
#   handoff-cli  the clinic CLI (handoff) alone, for a clinic host
# Each program's man page is its --help, made by help2man at build time. The packages' runtime
# dependencies are read from the binaries by dpkg-shlibdeps (dpkg-dev).

set(HANDOFF_UNITDIR "/lib/systemd/system" CACHE STRING "where the systemd units are installed")
set(HANDOFF_CONFDIR "/etc/handoff" CACHE STRING "where the default configuration is installed")

# The programs' install rules (COMPONENT server or cli) are beside their targets; these are the
# rest of the server package.
install(FILES
          ${PROJECT_SOURCE_DIR}/deploy/systemd/handoff-broker.service
          ${PROJECT_SOURCE_DIR}/deploy/systemd/handoff-intake.service
          ${PROJECT_SOURCE_DIR}/deploy/systemd/handoff-triage.service
          ${PROJECT_SOURCE_DIR}/deploy/systemd/handoff-scheduling.service
          ${PROJECT_SOURCE_DIR}/deploy/systemd/handoff-web.service
        DESTINATION ${HANDOFF_UNITDIR} COMPONENT server)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/handoff.sysusers DESTINATION lib/sysusers.d
        RENAME handoff.conf COMPONENT server)
set(HANDOFF_CONFFILES
    broker.env intake.env triage.env scheduling.env web.env directory.json rules.json registration.json)
install(FILES
          ${PROJECT_SOURCE_DIR}/deploy/etc/broker.env
          ${PROJECT_SOURCE_DIR}/deploy/etc/intake.env
          ${PROJECT_SOURCE_DIR}/deploy/etc/triage.env
          ${PROJECT_SOURCE_DIR}/deploy/etc/scheduling.env
          ${PROJECT_SOURCE_DIR}/deploy/etc/web.env
          ${PROJECT_SOURCE_DIR}/deploy/sample/directory.json
          ${PROJECT_SOURCE_DIR}/services/triage/rules.json
          ${PROJECT_SOURCE_DIR}/services/intake/registration.json
        DESTINATION ${HANDOFF_CONFDIR} PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        COMPONENT server)

# Man pages: help2man runs each program's --help (the option tables of hx_opt and cli_help.c).
# Not in sanitizer or fuzzing builds, where running the programs at build time is not wanted.
find_program(HELP2MAN help2man)
if(HELP2MAN AND NOT HANDOFF_SANITIZE AND NOT HANDOFF_FUZZ)
  set(man_dir ${CMAKE_BINARY_DIR}/man)
  set(man_pages)
  # program target, component, page name, help option, the NAME line
  set(man_list
      "handoff-broker|server|handoff-broker|--help|the Handoff message broker"
      "handoff-intake|server|handoff-intake|--help|the Handoff intake service"
      "handoff-triage|server|handoff-triage|--help|the Handoff triage service"
      "handoff-scheduling|server|handoff-scheduling|--help|the Handoff scheduling service"
      "handoff-web|server|handoff-web|--help|the Handoff clinic portal and its accounts"
      "handoff-web|server|handoff-web-serve|serve --help|the Handoff clinic portal's server"
      "handoff|cli|handoff|--help|the Handoff clinic command line")
  foreach(entry IN LISTS man_list)
    string(REPLACE "|" ";" f "${entry}")
    list(GET f 0 target)
    list(GET f 1 component)
    list(GET f 2 page)
    list(GET f 3 option)
    list(GET f 4 name)
    add_custom_command(OUTPUT ${man_dir}/${page}.1.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${man_dir}
      COMMAND ${HELP2MAN} --no-info --section=1 --version-string=${PROJECT_VERSION}
              "--help-option=${option}" "--name=${name}" "--manual=Handoff"
              --output=${man_dir}/${page}.1 $<TARGET_FILE:${target}>
      COMMAND gzip -9nf ${man_dir}/${page}.1
      DEPENDS ${target}
      COMMENT "help2man: ${page}.1.gz"
      VERBATIM)
    list(APPEND man_pages ${man_dir}/${page}.1.gz)
    install(FILES ${man_dir}/${page}.1.gz DESTINATION share/man/man1 COMPONENT ${component})
  endforeach()
  add_custom_target(handoff-man ALL DEPENDS ${man_pages})
elseif(NOT HELP2MAN)
  message(STATUS "help2man not found: no man pages (make deps installs it)")
endif()

# The packages.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME handoff)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Handoff <handoff@localhost>")
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
set(CPACK_SET_DESTDIR ON)                       # the units and /etc/handoff are absolute paths
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL server cli)            # handoff-gen (component tools) is not packaged
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)         # NAME_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_SERVER_PACKAGE_NAME handoff)
set(CPACK_DEBIAN_CLI_PACKAGE_NAME handoff-cli)
set(CPACK_COMPONENT_SERVER_DESCRIPTION "Handoff referral network: broker, services and clinic portal
The broker, intake, triage and scheduling services and the clinic portal (handoff-web),
with their systemd units and the default configuration in /etc/handoff.")
set(CPACK_COMPONENT_CLI_DESCRIPTION "Handoff referral network: the clinic command line
The handoff command for a clinic host: submit referrals, read the inbox, answer handoffs.")
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "passwd")           # useradd without systemd-sysusers
set(CPACK_DEBIAN_SERVER_PACKAGE_RECOMMENDS "handoff-cli")   # keygen, audit verify, dlq
# conffiles and the maintainer scripts (systemd reload, units stopped before removal)
set(pkg_dir ${CMAKE_BINARY_DIR}/cpack-control)
set(conffiles "")
foreach(f IN LISTS HANDOFF_CONFFILES)
  string(APPEND conffiles "${HANDOFF_CONFDIR}/${f}\n")
endforeach()
file(WRITE ${pkg_dir}/conffiles "${conffiles}")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA ${pkg_dir}/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
