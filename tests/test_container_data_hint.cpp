// Inside the container images (EQPROP_CONTAINER set), a data directory that is not
// there is reported as a bind mount left out, with the mount to add.
#include <doctest/doctest.h>

#include <cstdlib>

#include "hosttools/dataset_files.h"
#include "kernels/error.h"
#include "tests/test_util.h"

namespace eqprop {

TEST_CASE("dataset files: inside a container a missing data directory names the bind mount to add") {
  const std::string missing = "/nonexistent/eqprop-data";
  const std::string outside = test::thrown_message<DataError>([&] { load_dataset("fashion_mnist", missing); });
  CHECK(outside.find("--bind") == std::string::npos);
  ::setenv("EQPROP_CONTAINER", "1", 1);
  const std::string inside = test::thrown_message<DataError>([&] { load_dataset("fashion_mnist", missing); });
  ::unsetenv("EQPROP_CONTAINER");
  test::check_contains(inside, {missing, "missing or empty inside this container", "--bind /path/on/host:/data",
                                "--set data.dir=/data"});
  // The image's own /data bind point exists but is empty when nothing is bound there.
  test::TempDir empty;
  ::setenv("EQPROP_CONTAINER", "1", 1);
  const std::string unbound =
      test::thrown_message<DataError>([&] { load_dataset("fashion_mnist", empty.path().string()); });
  ::unsetenv("EQPROP_CONTAINER");
  test::check_contains(unbound, {"missing or empty inside this container", "--set data.dir=/data"});
}

}  // namespace eqprop
