# Reader/verifier and writer of the program file (flatbuffers only; no exceptions).
set(KILN_SERIALIZER_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/ProgramReader.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ProgramWriter.cpp)
if(NOT TARGET kiln_serializer)
  add_library(kiln_serializer STATIC ${KILN_SERIALIZER_SOURCES})
  target_link_libraries(kiln_serializer PUBLIC kiln_program_schema)
  set_target_properties(kiln_serializer PROPERTIES POSITION_INDEPENDENT_CODE ON)
endif()
