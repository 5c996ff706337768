# The addon over libatel. Built by meson (bindings/meson.build runs
# scripts/build-addon.py, which sets the variables below to the build tree)
# or by hand: `npm run build` after `make build` (defaults: ../../build).
{
  "variables": {
    "atel_include%": "<(module_root_dir)/../../producer/include",
    "atel_libdir%": "<(module_root_dir)/../../build/producer",
    "napi_include%": "<(module_root_dir)/node_modules/node-addon-api",
  },
  "targets": [{
    "target_name": "atel",
    "sources": ["src/atel_node.cc"],
    "include_dirs": ["<(napi_include)", "<(atel_include)"],
    "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"],
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "libraries": ["-L<(atel_libdir)", "-latel", "-Wl,-rpath,<(atel_libdir)"],
  }],
}
