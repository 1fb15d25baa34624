# cmake -DSOURCE=<repo>/python/kiln -DDEST=<build>/python/kiln -P LinkPackage.cmake
# Symlinks every entry of SOURCE (Python files, subpackages) into DEST, and
# removes links whose target is gone. Built files in DEST (the extension
# modules) are left alone.
file(MAKE_DIRECTORY ${DEST})
file(GLOB entries RELATIVE ${SOURCE} ${SOURCE}/*)
foreach(name ${entries})
  if(name STREQUAL "__pycache__")
    continue()
  endif()
  if(NOT IS_SYMLINK ${DEST}/${name} AND NOT EXISTS ${DEST}/${name})
    file(CREATE_LINK ${SOURCE}/${name} ${DEST}/${name} SYMBOLIC)
  endif()
endforeach()
file(GLOB existing RELATIVE ${DEST} ${DEST}/*)
foreach(name ${existing})
  if(IS_SYMLINK ${DEST}/${name} AND NOT EXISTS ${DEST}/${name})
    file(REMOVE ${DEST}/${name})
  endif()
endforeach()
