// The README's config reference is generated from the schema; this keeps the two
// in step (regenerate with `eqprop config --reference`).
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "engine/config.h"

TEST_CASE("readme: the config reference in README.md matches the schema") {
  std::ifstream file(std::string(EQPROP_SOURCE_DIR) + "/README.md");
  REQUIRE(file);
  std::stringstream readme;
  readme << file.rdbuf();
  const std::string table = eqprop::config_reference_markdown();
  CHECK_MESSAGE(readme.str().find(table) != std::string::npos,
                "README.md's config table is stale: paste the output of `eqprop config --reference`");
}
