// tools/main.cc — entry point of the `lowbit` command-line tool: parses the command line with
// CLI11, runs the selected subcommand, and maps every failure to an exit code (docs/cli.md).
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli.h"
#include "lowbit/format_layout.h"
#include "lowbit/status.h"

namespace {

int ExitCodeFor(lowbit::Status status) {
  return status == lowbit::Status::kInvalidArgument || status == lowbit::Status::kUnsupportedFormat
             ? lowbit::cli::kExitUsageError
             : lowbit::cli::kExitRuntimeError;
}

int Run(int argc, char** argv) {
  using namespace lowbit::cli;
  CLI::App app{"lowbit — quantize, inspect and compare 8-bit, 4-bit and FP8 weights"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lowbit 0.1.0 (format version " +
                                        std::to_string(LOWBIT_FORMAT_VERSION) + ")");
  std::vector<Subcommand> commands = {AddReportCommand(app),     AddQuantizeCommand(app),
                                      AddDequantizeCommand(app), AddInspectCommand(app),
                                      AddErrorCommand(app),      AddConvertCommand(app),
                                      AddBenchCommand(app)};
  // An unknown command word gets a direct message (CLI11 would only say one is required).
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const Subcommand& command : commands) {
      known = known || command.app->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + command.app->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "lowbit: error: unknown command '%s' (commands: %s)\n"
                           "Run 'lowbit --help' for usage.\n", argv[1], names.c_str());
      return kExitUsageError;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsageError;
  }
  for (const Subcommand& command : commands) {
    if (!command.app->parsed()) continue;
    try {
      return command.run();
    } catch (const UsageError& e) {
      std::fprintf(stderr, "lowbit %s: error: %s\nRun 'lowbit %s --help' for usage.\n",
                   command.app->get_name().c_str(), e.what(), command.app->get_name().c_str());
      return kExitUsageError;
    } catch (const lowbit::Error& e) {
      std::fprintf(stderr, "lowbit %s: error: %s\n", command.app->get_name().c_str(), e.what());
      return ExitCodeFor(e.status());
    }
  }
  return kExitUsageError;  // unreachable: require_subcommand(1)
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "lowbit: error: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "lowbit: error: unknown exception\n");
  }
  return lowbit::cli::kExitRuntimeError;
}
