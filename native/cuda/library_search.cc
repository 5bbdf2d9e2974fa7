#include "cuda/library_search.h"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <sstream>

namespace vitmsn {
namespace {

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void add_folder(std::vector<std::string>& out, const LibrarySearch& s, const std::string& dir) {
  if (dir.empty() || dir.find("/stubs") != std::string::npos) return;  // stubs only link, never run
  for (const std::string& so : s.sonames) out.push_back(dir + "/" + so);
}

}  // namespace

std::vector<std::string> library_candidates(const LibrarySearch& s) {
  std::vector<std::string> out;
  if (!s.override_path.empty()) {
    if (is_dir(s.override_path))
      add_folder(out, s, s.override_path);
    else
      out.push_back(s.override_path);
  }
  for (const std::string& so : s.sonames) out.push_back(so);  // LD_LIBRARY_PATH, ldconfig cache
  if (const char* c = std::getenv("CUDA_PATH"); c && *c) add_folder(out, s, std::string(c) + "/lib64");
  add_folder(out, s, "/usr/local/cuda/lib64");
  if (DIR* d = opendir("/usr/local/cuda/targets")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') add_folder(out, s, std::string("/usr/local/cuda/targets/") + e->d_name + "/lib");
    }
    closedir(d);
  }
  if (const char* pp = std::getenv("PYTHONPATH"); pp && *pp) {
    std::stringstream ss(pp);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
      for (const std::string& w : s.wheel_dirs) add_folder(out, s, dir + "/" + w);
    }
  }
  return out;
}

void* open_library(const LibrarySearch& s, const std::function<bool(void*, std::string*)>& bind, std::string* path,
                   std::string* reason) {
  std::ostringstream tried;
  for (const std::string& p : library_candidates(s)) {
    void* lib = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      tried << "\n  " << p << ": " << (e ? e : "not loadable");
      continue;
    }
    std::string missing;
    if (!bind(lib, &missing)) {
      tried << "\n  " << p << ": lacks " << missing;
      dlclose(lib);
      continue;
    }
    *path = p;
    return lib;
  }
  std::string names;
  for (const std::string& so : s.sonames) names += (names.empty() ? "" : ", ") + so;
  *reason = names + " not found; tried:" + tried.str();
  return nullptr;
}

}  // namespace vitmsn
