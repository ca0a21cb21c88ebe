// amparo: the operator CLI. All logic lives in the amparo_cli library.
#include <string>
#include <vector>

#include "services/cli/commands.h"

int main(int argc, char** argv) {
  return amparo::cli::RunCli(std::vector<std::string>(argv, argv + argc));
}
