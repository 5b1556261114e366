// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "faasbox",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "faasbox", targets: ["faasbox"]),
        .executable(name: "faasbox-init", targets: ["faasbox-init"]),
        .library(name: "ImageRuntime", targets: ["ImageRuntime"]),
        .library(name: "Sandbox", targets: ["Sandbox"]),
        .library(name: "Bootstrap", targets: ["Bootstrap"]),
        .library(name: "Executor", targets: ["Executor"]),
        .library(name: "Service", targets: ["Service"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        // The service (`faasbox serve`): HTTP API, SQLite state, Prometheus metrics; and its client.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0", traits: []),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CArchive", path: "Sources/CArchive"),
        .systemLibrary(name: "CSeccomp", path: "Sources/CSeccomp"),
        .systemLibrary(name: "CCap", path: "Sources/CCap"),
        // The clone child and its process calls (Sandbox only); the syscalls Glibc lacks (SystemSupport only).
        .target(name: "CSpawn", path: "Sources/CSpawn"),
        .target(name: "CSyscalls", path: "Sources/CSyscalls"),
        // pid 1 of every sandbox: static, because it runs inside images that have no libc.
        .executableTarget(
            name: "faasbox-init", path: "Sources/faasbox-init",
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-Xclang-linker", "-static"])]),
        .target(
            name: "SystemSupport",
            dependencies: ["CSyscalls", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(
            name: "ImageRuntime",
            dependencies: [
                "CArchive", "SystemSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Sandbox",
            dependencies: [
                "CSpawn", "CSeccomp", "CCap", "SystemSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Bootstrap",
            dependencies: [
                "ImageRuntime", "Sandbox", "SystemSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Many instances: functions, pools, the durable queue, the invocation log, metrics. No HTTP server.
        .target(
            name: "Executor",
            dependencies: [
                "Bootstrap", "ImageRuntime", "SystemSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The front doors of `faasbox serve`: listeners, the native API, /web/.
        .target(
            name: "Service",
            dependencies: [
                "Executor", "Bootstrap", "ImageRuntime", "SystemSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Measurement and diagnostics (`faasbox bench`, `doctor --isolation`): beside the CLI, not in the product.
        .target(
            name: "Diagnostics",
            dependencies: ["Bootstrap", "ImageRuntime", "SystemSupport"]
        ),
        // scripts/fuzz builds this with libFuzzer; a plain build replays inputs given as files.
        .executableTarget(name: "faasbox-fuzz", dependencies: ["ImageRuntime"], path: "Sources/faasbox-fuzz"),
        .executableTarget(
            name: "faasbox",
            dependencies: [
                "Service", "Executor", "Diagnostics", "Bootstrap", "ImageRuntime", "SystemSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "TestSupport",
            dependencies: ["CArchive", "SystemSupport", .product(name: "Crypto", package: "swift-crypto")],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "ImageRuntimeTests", dependencies: ["ImageRuntime", "SystemSupport", "TestSupport"]),
        .testTarget(name: "SandboxTests", dependencies: ["Sandbox", "TestSupport"]),
        .testTarget(name: "BootstrapTests", dependencies: ["Bootstrap", "Sandbox", "TestSupport"]),
        .testTarget(
            name: "ExecutorTests",
            dependencies: [
                "Executor", "Bootstrap", "ImageRuntime", "Sandbox", "TestSupport", .product(name: "GRDB", package: "GRDB.swift"),
            ]),
        .testTarget(
            name: "ServiceTests",
            dependencies: [
                "Service", "Executor", "Bootstrap", "ImageRuntime", "Sandbox", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]),
        .testTarget(name: "DiagnosticsTests", dependencies: ["Diagnostics", "Bootstrap", "ImageRuntime", "TestSupport"]),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "Executor", "Diagnostics", "Bootstrap", "ImageRuntime", "Sandbox", "SystemSupport", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
