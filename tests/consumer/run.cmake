# Builds and runs the consumer project against graphrun the way a user would, as a CTest test:
#   cmake -DMODE=install|build-tree -DGRAPHRUN_BUILD=<build> -DWORK=<scratch folder>
#         -DGENERATOR=<generator> [-DCONFIG=<config>] [-DCXX=<compiler>] [-DCXX_FLAGS=<flags>]
#         -P run.cmake
# install:    cmake --install <build> --prefix <WORK>/prefix, then -DCMAKE_PREFIX_PATH=<prefix>
# build-tree: -Dgraphrun_DIR=<build>
# Then: check_cae (penalty, gradient check, training) writes a tiny IDX data set, and
# graphrun-plus trains model.cae on it for one epoch and evaluates the checkpoint.
cmake_minimum_required(VERSION 3.25)

foreach(var MODE GRAPHRUN_BUILD WORK GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake needs -D${var}=...")
  endif()
endforeach()
if(NOT CONFIG)
  set(CONFIG Release)
endif()
set(source ${CMAKE_CURRENT_LIST_DIR})

# Runs a command; stops the test with its output when it fails. OUTPUT_VARIABLE gets stdout.
function(step name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "OUTPUT_VARIABLE" "COMMAND")
  message(STATUS "consumer ${MODE}: ${name}")
  execute_process(COMMAND ${arg_COMMAND} WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ECHO_OUTPUT_VARIABLE ERROR_VARIABLE err ECHO_ERROR_VARIABLE)
  if(NOT rc EQUAL 0)
    string(JOIN " " line ${arg_COMMAND})
    message(FATAL_ERROR "consumer ${MODE}: ${name} failed (${rc}): ${line}")
  endif()
  if(arg_OUTPUT_VARIABLE)
    set(${arg_OUTPUT_VARIABLE} "${out}" PARENT_SCOPE)
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

if(MODE STREQUAL "install")
  set(prefix ${WORK}/prefix)
  step("install to ${prefix}" COMMAND ${CMAKE_COMMAND} --install ${GRAPHRUN_BUILD}
       --config ${CONFIG} --prefix ${prefix})
  # The installed graphrun finds its libraries wherever the prefix is (no LD_LIBRARY_PATH).
  step("installed graphrun --version" COMMAND ${prefix}/bin/graphrun --version)
  set(find_args -DCMAKE_PREFIX_PATH=${prefix})
  set(expect_dir ${prefix}/)
  # Private dependencies stay private: no installed header may include them.
  file(GLOB_RECURSE headers ${prefix}/include/graphrun/*)
  foreach(header IN LISTS headers)
    file(STRINGS ${header} leaks REGEX
         "^[ \t]*#[ \t]*include[ \t]*[<\"](tbb/|oneapi/|boost/|nlohmann/|cblas|openblas|zlib|zconf|stb/|stb_|Random123/)")
    if(leaks)
      message(SEND_ERROR "${header} includes a private dependency: ${leaks}")
    endif()
  endforeach()
elseif(MODE STREQUAL "build-tree")
  set(find_args -Dgraphrun_DIR=${GRAPHRUN_BUILD})
  set(expect_dir ${GRAPHRUN_BUILD})
else()
  message(FATAL_ERROR "MODE must be install or build-tree, not '${MODE}'")
endif()

set(build ${WORK}/build)
set(configure_args -S ${source} -B ${build} -G ${GENERATOR} -DCMAKE_BUILD_TYPE=${CONFIG}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF ${find_args})
if(CXX)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${CXX})
endif()
if(CXX_FLAGS)
  list(APPEND configure_args "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${CXX_FLAGS}")
endif()
step("configure" COMMAND ${CMAKE_COMMAND} ${configure_args} OUTPUT_VARIABLE configured)
# The package found must be the one under test, not another graphrun on the machine.
string(FIND "${configured}" "from ${expect_dir}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "consumer ${MODE}: graphrun was not found in ${expect_dir}")
endif()
step("build" COMMAND ${CMAKE_COMMAND} --build ${build} --config ${CONFIG})

find_program(check_cae check_cae PATHS ${build} ${build}/${CONFIG} NO_DEFAULT_PATH REQUIRED)
find_program(graphrun_plus graphrun-plus PATHS ${build} ${build}/${CONFIG} NO_DEFAULT_PATH REQUIRED)
step("check_cae" COMMAND ${check_cae} ${WORK}/data)
set(run_args --data ${WORK}/data --out ${WORK}/run --threads 2)
step("graphrun-plus train" COMMAND ${graphrun_plus} ${source}/model.cae --epochs 1 --batch 32 ${run_args})
foreach(file checkpoint.safetensors config.ini metrics.jsonl)
  if(NOT EXISTS ${WORK}/run/${file})
    message(FATAL_ERROR "consumer ${MODE}: graphrun-plus wrote no ${file} in ${WORK}/run")
  endif()
endforeach()
step("graphrun-plus eval" COMMAND ${graphrun_plus} eval ${source}/model.cae ${run_args}
     OUTPUT_VARIABLE evaluated)
if(NOT evaluated MATCHES "contractive")
  message(FATAL_ERROR "consumer ${MODE}: eval did not report the contractive term")
endif()
