# ctest script: configure and build runtime-stub/ on its own, then check that
# the kiln-runtime binary it makes links no torch, c10, MLIR or LLVM library.
execute_process(COMMAND ${CMAKE_COMMAND} -G Ninja -S ${SOURCE_DIR} -B ${BINARY_DIR}
                        -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "runtime-stub does not configure on its own")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY_DIR} --target kiln-runtime
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "runtime-stub does not build on its own")
endif()
execute_process(COMMAND ldd ${BINARY_DIR}/bin/kiln-runtime OUTPUT_VARIABLE libs RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ldd failed on ${BINARY_DIR}/bin/kiln-runtime")
endif()
string(TOLOWER "${libs}" libs_lower)
# Drop the load addresses "(0x...)": a random address can contain "c10".
string(REGEX REPLACE "\\(0x[0-9a-f]+\\)" "" libs_lower "${libs_lower}")
foreach(forbidden torch c10 mlir llvm)
  if(libs_lower MATCHES "${forbidden}")
    message(FATAL_ERROR "the standalone kiln-runtime links ${forbidden}:\n${libs}")
  endif()
endforeach()
message(STATUS "standalone kiln-runtime links only:\n${libs}")
