{
  "targets": [
    {
      "target_name": "natwatch",
      "sources": [
        "native/addon.cc",
        "native/ct-decoder.cc",
        "native/debug.cc",
        "native/diag-decoder.cc",
        "native/ipt-legacy.cc",
        "native/kernel-facts.cc",
        "native/netlink-socket.cc",
        "native/netns.cc",
        "native/nflog-config.cc",
        "native/nflog-decoder.cc",
        "native/proc-net.cc",
        "native/nft-decoder.cc",
        "native/reader.cc",
        "native/records.cc",
        "native/rtnl-decoder.cc",
        "native/source.cc",
        "native/uring-rx.cc",
        "native/xt-decoder.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti"]
    }
  ]
}
