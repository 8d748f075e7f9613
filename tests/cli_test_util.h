// Helpers shared by the CLI test binaries (cli_test, cli_calibrate_test): run a program as a
// subprocess with stdin /dev/null and stdout/stderr captured through files.
#ifndef LOWBIT_TESTS_CLI_TEST_UTIL_H_
#define LOWBIT_TESTS_CLI_TEST_UTIL_H_

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "test_files.h"

namespace lowbit::testing {

struct CliResult {
  int exit_code = -1;  // exit status, or 128 + signal number when the child was killed
  std::string out;
  std::string err;
  long max_rss_kib = 0;  // peak resident set of the child
};

// Runs `binary` with `args`; stdout and stderr go to `out_path` / `err_path` (so the child never
// sees a terminal), are read back into the result and the two files removed.
inline CliResult RunProgram(const std::string& binary, const std::vector<std::string>& args,
                            const std::string& out_path, const std::string& err_path) {
  std::vector<std::string> argv = {binary};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  CliResult r;
  int status = 0;
  struct rusage usage;
  ::wait4(pid, &status, 0, &usage);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.max_rss_kib = usage.ru_maxrss;
  r.out = ReadText(out_path);
  r.err = ReadText(err_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  return r;
}

}  // namespace lowbit::testing

#endif  // LOWBIT_TESTS_CLI_TEST_UTIL_H_
