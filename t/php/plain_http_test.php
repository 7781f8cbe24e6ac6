<?php
// The plain-HTTP examples of clients/php/README.md ("Plain HTTP without the
// wrapper"), run as written against a running cluster: writes on node n1,
// reads on node p30.  Usage: php plain_http_test.php N1_BASE P30_BASE PREFIX
// Prints TAP.
require __DIR__ . '/tap.php';

if ($argc < 4) {
    fwrite(STDERR, "usage: php plain_http_test.php N1_BASE P30_BASE PREFIX\n");
    exit(2);
}
list(, $base, $p30, $prefix) = $argv;

// ---- from the README ------------------------------------------------------
function http_status(array $headers): int
{
    $status = 0;
    foreach ($headers as $h) {
        if (preg_match('#^HTTP/\S+ (\d{3})#', $h, $m)) {
            $status = (int)$m[1];
        }
    }
    return $status;
}

function http_header(array $headers, string $name): ?string
{
    $value = null;
    foreach ($headers as $h) {
        if (stripos($h, "$name:") === 0) {
            $value = trim(substr($h, strlen($name) + 1));
        }
    }
    return $value;
}
// ---------------------------------------------------------------------------

$key = "$prefix/reports/2024.csv";
$data = "year,value\n" . str_repeat("2024,42\n", 5000);

// PUT
$ctx = stream_context_create(['http' => [
    'method'        => 'PUT',
    'header'        => "Content-Type: application/octet-stream\r\n",
    'content'       => $data,
    'ignore_errors' => true,
]]);
file_get_contents("$base/$key", false, $ctx);
$status  = http_status($http_response_header);
$version = http_header($http_response_header, 'X-ClusterStorage-Version');
$etag    = http_header($http_response_header, 'ETag');
is_same($status, 201, 'PUT of a new file is 201');
ok($version !== null && ctype_digit($version), "X-ClusterStorage-Version is sent ($version)");
ok($etag !== null && $etag !== '', "ETag is sent ($etag)");
no_warnings('PUT');

// GET on the other node
$ctx  = stream_context_create(['http' => ['ignore_errors' => true]]);
$body = file_get_contents("$p30/$key", false, $ctx);
is_same(http_status($http_response_header), 200, 'GET on p30 is 200');
ok($body === $data, 'with the same bytes');
is_same(http_header($http_response_header, 'X-ClusterStorage-Version'), $version, 'and the same version');
is_same(http_header($http_response_header, 'ETag'), $etag, 'and the same ETag');
no_warnings('GET');

// Replace: 204 and a new version.
$data2 = $data . "2025,43\n";
$ctx = stream_context_create(['http' => [
    'method'        => 'PUT',
    'header'        => "Content-Type: application/octet-stream\r\n",
    'content'       => $data2,
    'ignore_errors' => true,
]]);
file_get_contents("$base/$key", false, $ctx);
is_same(http_status($http_response_header), 204, 'PUT of an existing file is 204');
$version2 = http_header($http_response_header, 'X-ClusterStorage-Version');
$etag2    = http_header($http_response_header, 'ETag');
ok((int)$version2 > (int)$version, "a higher version ($version -> $version2)");

// Conditional PUTs.
function put_with($url, $hdr, $content)
{
    $ctx = stream_context_create(['http' => [
        'method' => 'PUT', 'header' => $hdr, 'content' => $content, 'ignore_errors' => true,
    ]]);
    file_get_contents($url, false, $ctx);
    return http_status($http_response_header);
}
$hdr = "Content-Type: application/octet-stream\r\nIf-None-Match: *\r\n";
is_same(put_with("$base/$key", $hdr, 'clobber'), 412, 'If-None-Match: * on an existing file is 412');
$hdr = "Content-Type: application/octet-stream\r\nIf-Match: $etag\r\n";
is_same(put_with("$p30/$key", $hdr, 'clobber'), 412, 'If-Match with a stale ETag (on the other node) is 412');
$hdr = "Content-Type: application/octet-stream\r\nIf-Match: $etag2\r\n";
$data3 = $data2 . "2026,44\n";
is_same(put_with("$p30/$key", $hdr, $data3), 204, 'If-Match with the current ETag is 204');
$hdr = "Content-Type: application/octet-stream\r\nIf-None-Match: *\r\n";
is_same(put_with("$base/$prefix/new.txt", $hdr, 'new'), 201, 'If-None-Match: * on a new file is 201');
no_warnings('conditional PUTs');

// GET with the stream context, then version as an int.
$ctx  = stream_context_create(['http' => ['ignore_errors' => true]]);
$body = file_get_contents("$base/$key", false, $ctx);
$version = null;
if (http_status($http_response_header) === 200) {
    $version = (int)http_header($http_response_header, 'X-ClusterStorage-Version');
}
ok($body === $data3 && $version > (int)$version2, 'n1 serves the version written on p30');

// Streamed download.
$tmp = tempnam(sys_get_temp_dir(), 'cs30');
$in  = fopen("$p30/$key", 'rb');
$out = fopen($tmp, 'wb');
stream_copy_to_stream($in, $out);
fclose($in);
fclose($out);
ok(file_get_contents($tmp) === $data3, 'stream_copy_to_stream of an http:// stream');
unlink($tmp);

// HEAD
$ctx = stream_context_create(['http' => ['method' => 'HEAD', 'ignore_errors' => true]]);
$h   = get_headers("$p30/$key", true, $ctx);
ok(is_array($h) && preg_match('#^HTTP/\S+ 200#', $h[0]), 'HEAD with get_headers is 200');
is_same(isset($h['Content-Length']) ? (int)$h['Content-Length'] : null, strlen($data3),
        'Content-Length is the size');
ok(isset($h['X-ClusterStorage-Version']) && (int)$h['X-ClusterStorage-Version'] === $version,
   'X-ClusterStorage-Version in the HEAD answer');
no_warnings('GET/HEAD');

// DELETE
$ctx = stream_context_create(['http' => ['method' => 'DELETE', 'ignore_errors' => true]]);
file_get_contents("$base/$key", false, $ctx);
is_same(http_status($http_response_header), 204, 'DELETE is 204');
file_get_contents("$base/$key", false, $ctx);
is_same(http_status($http_response_header), 404, 'DELETE again is 404');
file_get_contents("$base/$prefix/new.txt", false, $ctx);
is_same(http_status($http_response_header), 204, 'DELETE of the other file');

$ctx  = stream_context_create(['http' => ['ignore_errors' => true]]);
file_get_contents("$p30/$key", false, $ctx);
is_same(http_status($http_response_header), 404, 'GET on p30 after the DELETE is 404');
no_warnings('DELETE');

// Without ignore_errors: false and a warning.
ok(file_get_contents("$p30/$key") === false, 'without ignore_errors a 404 is false');
warned('/HTTP request failed! HTTP\/1\.1 404/', 'and a warning');

done_testing();
