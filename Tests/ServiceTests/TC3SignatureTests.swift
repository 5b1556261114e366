import Foundation
import TestSupport
import Testing

@testable import Service

/// TC3-HMAC-SHA256 against the contract's test vectors (api3-contract §1.2), and the verifier's rules.
@Suite struct TC3SignatureTests {
    static let key = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"

    @Test(arguments: [
        ("application/json; charset=utf-8", "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"),
        ("application/json", "683bd0b53659853c39699162253251192320a09b3937e27bf8e08a559b1465b8"),
    ])
    func theOfficialExample(contentType: String, signature: String) {
        let body = #"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#
        let payloadHash = TC3Signature.sha256Hex(Array(body.utf8))
        #expect(payloadHash == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
        let request = TC3Signature.Request(
            method: "POST", path: "/", query: "", headers: [("content-type", contentType), ("host", "cvm.tencentcloudapi.com")],
            payloadHash: payloadHash)
        if contentType.hasSuffix("utf-8") {
            #expect(
                TC3Signature.sha256Hex(Array(request.canonical.utf8))
                    == "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031")
        }
        #expect(TC3Signature.date(ofTimestamp: 1_551_113_065) == "2019-02-25")
        #expect(TC3Signature.signature(request, timestamp: 1_551_113_065, secretKey: Self.key, service: "cvm") == signature)
    }

    @Test func theSCFExample() {
        let body = #"{"FunctionName": "hello", "ClientContext": "{\"k\":\"v\"}"}"#
        let payloadHash = TC3Signature.sha256Hex(Array(body.utf8))
        #expect(payloadHash == "7aed61ff9b14de0d70dd595edfd9ec04a3c850fec856934b48474621bbf8048b")
        let request = TC3Signature.Request(
            method: "POST", path: "/", query: "", headers: [("content-type", "application/json"), ("host", "127.0.0.1:9100")],
            payloadHash: payloadHash)
        #expect(
            TC3Signature.sha256Hex(Array(request.canonical.utf8))
                == "3563398924df24331d4a39bf333f423fff2ce8902e1a4b833911cce6add51da6")
        #expect(
            TC3Signature.signature(request, timestamp: 1_700_000_000, secretKey: Self.key)
                == "5904aa15423a7452b4951c9e27eb297bc4b470d5212f03c00343c9082b514cd7")
        let header = TC3Signature.authorization(request, timestamp: 1_700_000_000, secretID: "AKIDEXAMPLE", secretKey: Self.key)
        #expect(
            header
                == "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2023-11-14/scf/tc3_request, SignedHeaders=content-type;host, Signature=5904aa15423a7452b4951c9e27eb297bc4b470d5212f03c00343c9082b514cd7"
        )
        #expect(TC3Signature.Authorization(header)?.secretID == "AKIDEXAMPLE")
        #expect(TC3Signature.Authorization(header)?.signedHeaders == ["content-type", "host"])
    }

    /// The verifier re-derives the signature from the received bytes, in tccli's `Host: http://…` form too, and
    /// says which rule a request broke.
    @Test func theVerifierChecksEachRule() throws {
        let dir = TestPaths.temporaryDirectory("tc3")
        let store = CredentialStore(stateDir: dir)
        let credential = try store.create()
        let verifier = RequestVerifier(credentials: store)
        let now = 1_700_000_000
        func verify(
            host: String = "http://127.0.0.1:9100", timestamp: Int = now, signedWith key: String? = nil, id: String? = nil,
            date: String? = nil
        )
            -> String
        {
            let request = TC3Signature.Request(
                method: "POST", path: "/", query: "", headers: [("content-type", "application/json"), ("host", host)],
                payloadHash: TC3Signature.sha256Hex([UInt8]()))
            var authorization = TC3Signature.authorization(
                request, timestamp: timestamp, secretID: id ?? credential.SecretId, secretKey: key ?? credential.SecretKey)
            if let date { authorization = authorization.replacingOccurrences(of: "2023-11-14", with: date) }
            let headers = [
                "authorization": authorization, "x-tc-timestamp": "\(timestamp)", "content-type": "application/json",
                "host": "http://127.0.0.1:9100",
            ]
            do throws(AuthFailure) {
                return try verifier.verify(
                    method: "POST", path: "/", query: "", header: { headers[$0] }, payloadHash: TC3Signature.sha256Hex([UInt8]()),
                    now: now)
            } catch { return error.code.rawValue }
        }
        #expect(verify() == credential.SecretId, "tccli's Host, as received")
        #expect(verify(host: "127.0.0.1:9100") == "AuthFailure.SignatureFailure", "signed for another Host")
        #expect(verify(signedWith: "wrong") == "AuthFailure.SignatureFailure")
        #expect(verify(id: "AKIDnobody") == "AuthFailure.SecretIdNotFound")
        #expect(verify(timestamp: now - 301) == "AuthFailure.SignatureExpire")
        #expect(verify(timestamp: now - 300) == credential.SecretId, "300 s off is still in time")
        #expect(verify(date: "2023-11-13") == "AuthFailure.SignatureFailure", "a credential date that is not the timestamp's")
        var st = stat()
        #expect(stat(store.path, &st) == 0 && st.st_mode & 0o777 == 0o600)
    }
}
