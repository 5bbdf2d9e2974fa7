{
  # CPU-only build of the addon for every node-gyp based path (npm's install fallback through
  # node-gyp-build, @electron/rebuild, prebuildify). CMakeLists.txt is the full build (CUDA too).
  "targets": [
    {
      "target_name": "vitmsn",
      "sources": ["<!@(node scripts/gyp-sources.js)"],
      # The ISA kernel files only where they run (native/cpu/isa_target.h).
      "conditions": [
        ["target_arch=='x64' or target_arch=='ia32'", {"sources": ["<!@(node scripts/gyp-sources.js x86)"]}],
        ["target_arch=='arm64'", {"sources": ["<!@(node scripts/gyp-sources.js arm64)"]}]
      ],
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: see CMakeLists.txt (terminated workers).
      "defines": ["NAPI_VERSION=8", "NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-O3"]
      },
      "msvs_settings": {"VCCLCompilerTool": {"ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"]}}
    }
  ]
}
