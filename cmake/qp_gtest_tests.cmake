# Read by CTest (a TEST_INCLUDE_FILES entry that qp_test() writes for each test binary):
# lists the binary's GoogleTest cases and adds one CTest test per case, so `ctest -j` runs
# them in parallel. Input variables: QP_TEST_BINARY, QP_TEST_ENV, QP_TEST_WORKDIR.
#
# This replaces CMake's gtest_discover_tests() because that marks every test whose output
# shows "[  SKIPPED ]" as skipped, whatever its exit status. A suite whose SetUpTestSuite
# failed prints its tests as skipped and exits 1, so a broken fixture looked like a skip.
# Here a skip is a failure: nothing in quietpatch's suite may skip.
# Each test is labelled with its binary's name (ctest -L selects binaries).
get_filename_component(_qp_binary "${QP_TEST_BINARY}" NAME)
if(NOT EXISTS "${QP_TEST_BINARY}")
  add_test("${_qp_binary}.NotBuilt" "${QP_TEST_BINARY}")
  set_tests_properties("${_qp_binary}.NotBuilt" PROPERTIES LABELS "${_qp_binary}")
  return()
endif()
execute_process(COMMAND "${QP_TEST_BINARY}" --gtest_list_tests
  WORKING_DIRECTORY "${QP_TEST_WORKDIR}" TIMEOUT 60
  RESULT_VARIABLE _qp_rc OUTPUT_VARIABLE _qp_out ERROR_VARIABLE _qp_err)
if(NOT _qp_rc EQUAL 0)
  # Listing failed: one test that runs the binary, and so fails, with its output.
  add_test("${_qp_binary}.ListingFailed" "${QP_TEST_BINARY}" --gtest_list_tests --qp-listing-failed)
  set_tests_properties("${_qp_binary}.ListingFailed" PROPERTIES LABELS "${_qp_binary}")
  return()
endif()
string(REPLACE "\n" ";" _qp_lines "${_qp_out}")
set(_qp_suite "")
foreach(_qp_line IN LISTS _qp_lines)
  if(_qp_line STREQUAL "")
    continue()
  endif()
  string(REGEX REPLACE " *#.*" "" _qp_line "${_qp_line}")  # "  Case  # GetParam() = ..."
  if(_qp_line MATCHES "^ +(.+)$")
    set(_qp_test "${_qp_suite}${CMAKE_MATCH_1}")
    add_test("${_qp_test}" "${QP_TEST_BINARY}" "--gtest_filter=${_qp_test}")
    set_tests_properties("${_qp_test}" PROPERTIES
      LABELS "${_qp_binary}"
      ENVIRONMENT "${QP_TEST_ENV}"
      WORKING_DIRECTORY "${QP_TEST_WORKDIR}"
      FAIL_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
  elseif(_qp_line MATCHES "^([^ ].*\\.)$")
    set(_qp_suite "${CMAKE_MATCH_1}")
  endif()
endforeach()
