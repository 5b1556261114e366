import Testing

@testable import Bootstrap
@testable import ImageRuntime

@Suite struct ContractTests {
    @Test func initReportHasTheContractsFieldsWithTenthsOfAMillisecond() {
        var t = PhaseTimings()
        t.pullCode = .microseconds(1_234)
        t.initRuntime = .microseconds(4_560)
        t.initFunction = .microseconds(50)
        t.coldstart = .microseconds(6_000)
        #expect(
            LogFormat.initReport("rid", t)
                == "Init Report RequestId: rid Coldstart: 6.0ms PullCode: 1.2ms InitRuntime: 4.6ms InitFunction: 0.1ms Overhead: 0.2ms"
        )
        #expect(t.overhead == .microseconds(156))
        #expect(
            LogFormat.provisionedReport("fb-1", t)
                == "Provisioned Report InstanceId: fb-1 Coldstart: 6.0ms PullCode: 1.2ms InitRuntime: 4.6ms InitFunction: 0.1ms Overhead: 0.2ms"
        )
    }

    @Test func reportBillsWholeMillisecondsRoundedUp() {
        let line = LogFormat.report("r", duration: .microseconds(6_010), memorySizeMB: 128, maxMemoryUsedBytes: 3 << 20)
        #expect(line == "REPORT RequestId: r Duration: 6.0 ms Billed Duration: 7 ms Memory Size: 128 MB Max Memory Used: 3.0 MB")
    }

    @Test func theEnvironmentHasSCFVariablesThenImageThenUser() {
        var config = FunctionConfig(name: "fn")
        config.environment = ["A": "user", "PATH": "/user/bin"]
        let env = config.environment(imageEnv: ["PATH=/bin", "A=image", "B=image"])
        #expect(env.contains("SCF_FUNCTIONNAME=fn"))
        #expect(env.contains("SCF_FUNCTIONVERSION=$LATEST"))
        #expect(env.contains("SCF_NAMESPACE=default"))
        #expect(env.contains("TENCENTCLOUD_RUNENV=SCF"))
        #expect(env.contains("USER_CODE_ROOT=/var/user/"))
        #expect(env.contains("_HANDLER=index.main_handler"))
        #expect(env.contains("SCF_FUNCTIONTIMEOUT=3") && env.contains("SCF_FUNCTIONMEMORYSIZE=128"))
        #expect(env.contains("A=user") && !env.contains("A=image"))
        #expect(env.contains("B=image"))
        #expect(env.filter { $0.hasPrefix("PATH=") } == ["PATH=/user/bin"])
    }

    @Test func httpRequestLinesParseOrFailClearly() throws {
        let request = try HTTPRequest(parsing: "get /hello?x=1")
        #expect(request.method == "GET" && request.target == "/hello?x=1")
        #expect(throws: BootstrapError.self) { try HTTPRequest(parsing: "GET hello") }
        #expect(throws: BootstrapError.self) { try HTTPRequest(parsing: "/hello") }
    }

}
