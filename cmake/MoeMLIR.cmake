# Finds MLIR/LLVM 22 and sets up TableGen and the shared libMLIR.so link.
set(MOE_LLVM_PREFIX "/usr/lib/llvm-22" CACHE PATH "Prefix of the LLVM/MLIR 22 installation")
if(NOT MLIR_DIR)
  set(MLIR_DIR "${MOE_LLVM_PREFIX}/lib/cmake/mlir")
endif()
find_package(MLIR REQUIRED CONFIG)
message(STATUS "Using MLIR ${LLVM_PACKAGE_VERSION} from ${MLIR_DIR}")

list(APPEND CMAKE_MODULE_PATH "${MLIR_CMAKE_DIR}" "${LLVM_CMAKE_DIR}")
set(LLVM_RUNTIME_OUTPUT_INTDIR ${CMAKE_BINARY_DIR}/bin)
set(LLVM_LIBRARY_OUTPUT_INTDIR ${CMAKE_BINARY_DIR}/lib)
set(MLIR_BINARY_DIR ${CMAKE_BINARY_DIR})
# Link every tool against the one shared libMLIR.so (fast links, and never a
# mix of static and shared MLIR in one process).
set(MLIR_LINK_MLIR_DYLIB ON)

include(TableGen)
include(AddLLVM)
include(AddMLIR)
include(HandleLLVMOptions)

include_directories(SYSTEM ${LLVM_INCLUDE_DIRS} ${MLIR_INCLUDE_DIRS})
# Headers live next to their sources; generated .inc files mirror them in the
# build tree.
include_directories(${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
include_directories(${PROJECT_SOURCE_DIR}/runtime/src)
link_directories(${LLVM_BUILD_LIBRARY_DIR})
separate_arguments(MOE_LLVM_DEFINITIONS NATIVE_COMMAND ${LLVM_DEFINITIONS})
add_definitions(${MOE_LLVM_DEFINITIONS})

set(MOE_LIT "${MOE_LLVM_PREFIX}/bin/lit" CACHE FILEPATH "lit executable")
set(LLVM_EXTERNAL_LIT "${MOE_LIT}" CACHE STRING "lit used by check targets" FORCE)
