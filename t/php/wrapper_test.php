<?php
// The cluster:// stream wrapper (clients/php/ClusterStorage.php) against a
// running cluster.  Usage: php wrapper_test.php N1_BASE P30_BASE PREFIX
// (bases like http://127.0.0.1:8529/files).  Prints TAP.
require __DIR__ . '/tap.php';
require __DIR__ . '/../../clients/php/ClusterStorage.php';

use ClusterStorage\StreamWrapper;

if ($argc < 4) {
    fwrite(STDERR, "usage: php wrapper_test.php N1_BASE P30_BASE PREFIX\n");
    exit(2);
}
list(, $n1, $p30, $prefix) = $argv;

// cluster:// writes and reads on node n1, p30:// on node p30.
StreamWrapper::register('cluster', $n1);
StreamWrapper::register('p30', $p30);
// Nobody listens on port 1.
StreamWrapper::register('dead', 'http://127.0.0.1:1/files', ['timeout' => 5]);
ok(in_array('cluster', stream_get_wrappers(), true), 'cluster:// is registered');

$k = "$prefix/dir one/data.bin";           // a space and subdirectories
ok(mkdir("cluster://$prefix/dir one", 0777, true), 'mkdir -p of the test directories');
is_same(StreamWrapper::httpUrl("cluster://$k"), "$n1/$prefix/dir%20one/data.bin",
        'cluster://path maps to BASE/path, percent-encoded');

// ---------------------------------------------------------------- write/read
$data = '';
for ($i = 0; $i < 300000; $i++) {
    $data .= chr(($i * 7 + ($i >> 8)) & 255);
}
is_same(file_put_contents("cluster://$k", $data), strlen($data),
        'file_put_contents on n1 returns the byte count');
no_warnings('file_put_contents');

$got = file_get_contents("p30://$k");
ok($got === $data, 'file_get_contents on p30 returns the same bytes');
no_warnings('file_get_contents');

ok(file_exists("p30://$k"), 'file_exists on p30');
ok(is_file("p30://$k"), 'is_file on p30');
ok(!is_dir("p30://$k"), 'not is_dir');
is_same(filesize("p30://$k"), strlen($data), 'filesize on p30');
$mt = filemtime("p30://$k");
ok(is_int($mt) && abs($mt - time()) < 300, "filemtime on p30 is about now ($mt)");
no_warnings('stat functions');

$fp = fopen("p30://$k", 'rb');
ok(is_resource($fp), 'fopen r on p30');
$st = fstat($fp);
is_same($st['size'], strlen($data), 'fstat size');
$w = stream_get_meta_data($fp)['wrapper_data'];
ok($w instanceof StreamWrapper && $w->version() >= 1,
   'stream_get_meta_data()[wrapper_data]->version() is the X-ClusterStorage-Version');
$etagP30 = $w->etag();
$head = fread($fp, 1000);
is_same($head, substr($data, 0, 1000), 'fread returns the first bytes');
$rest = stream_get_contents($fp);
ok($head . $rest === $data, 'the rest with stream_get_contents');
ok(feof($fp), 'feof at the end');
ok(fclose($fp), 'fclose');
no_warnings('fopen/fread/fclose');

$fp = fopen("cluster://$k", 'r');
is_same(stream_get_meta_data($fp)['wrapper_data']->etag(), $etagP30, 'same ETag on n1 and p30');
fclose($fp);

// --------------------------------------------- a big file, streamed both ways
$big = "$prefix/big.bin";
$chunks = 96;                               // 96 x 64 KiB = 6 MiB
$h = hash_init('sha256');
$mem0 = memory_get_usage();
$peak0 = memory_get_peak_usage();
$fp = fopen("cluster://$big", 'wb');
for ($i = 0; $i < $chunks; $i++) {
    $c = str_repeat(hash('sha256', "chunk $i", true), 2048);   // 64 KiB
    hash_update($h, $c);
    fwrite($fp, $c);
}
unset($c);
ok(fclose($fp), 'fopen w + fwrite 6 MiB + fclose');
no_warnings('big write');
$want = hash_final($h);
$grow = memory_get_peak_usage() - $peak0;
ok($grow < 4 * 1024 * 1024, "writing 6 MiB raised peak memory by less than 4 MiB ($grow bytes)");

$h = hash_init('sha256');
$n = 0;
if (function_exists('memory_reset_peak_usage')) {
    memory_reset_peak_usage();              // PHP >= 8.2
}
$fp = fopen("p30://$big", 'rb');
$peak1 = memory_get_peak_usage();
while (!feof($fp)) {
    $c = fread($fp, 65536);
    $n += strlen($c);
    hash_update($h, $c);
}
fclose($fp);
is_same($n, $chunks * 65536, 'read 6 MiB back on p30');
is_same(hash_final($h), $want, 'with the same SHA-256');
$grow = memory_get_peak_usage() - $peak1;
ok($grow < 1024 * 1024, "reading it raised peak memory by less than 1 MiB ($grow bytes)");
no_warnings('big read');

// -------------------------------------------------------- rename, copy, append
$k2 = "$prefix/renamed.bin";
ok(rename("cluster://$k", "cluster://$k2"), 'rename on n1');
no_warnings('rename');
ok(!file_exists("p30://$k"), 'the old name is gone on p30');
ok(file_get_contents("p30://$k2") === $data, 'the new name has the bytes on p30');

$k3 = "$prefix/copied.bin";
ok(copy("p30://$k2", "p30://$k3"), 'copy on p30');
ok(file_get_contents("cluster://$k3") === $data, 'the copy has the bytes on n1');
no_warnings('copy');

is_same(file_put_contents("cluster://$k3", "appended", FILE_APPEND), 8, 'FILE_APPEND on n1');
ok(file_get_contents("p30://$k3") === $data . 'appended', 'p30 sees the appended bytes');
no_warnings('append');

// ----------------------------------------------------------- unlink
ok(unlink("cluster://$k2"), 'unlink on n1');
no_warnings('unlink');
ok(!file_exists("p30://$k2"), 'file_exists is false on p30 after the unlink');
ok(!file_exists("cluster://$k2"), 'and on n1');
no_warnings('file_exists of a deleted file');

// ------------------------------------------------------ errors, as file:// does
$missing = "$prefix/no-such-file";
$fp = fopen("p30://$missing", 'r');
ok($fp === false, 'fopen of a missing file returns false');
warned('/^fopen\(p30:\/\/.*no-such-file\): Failed to open stream: No such file or directory$/', 'fopen of a missing file');

ok(file_get_contents("cluster://$missing") === false, 'file_get_contents of a missing file returns false');
warned('/Failed to open stream: No such file or directory$/', 'file_get_contents of a missing file');

ok(@file_get_contents("cluster://$missing") === false, '@file_get_contents returns false');
no_warnings('@ silences the warnings');

ok(!file_exists("p30://$missing"), 'file_exists of a missing file is false');
ok(!is_file("p30://$missing"), 'is_file of a missing file is false');
no_warnings('file_exists is quiet');

ok(filesize("p30://$missing") === false, 'filesize of a missing file is false');
warned('/stat failed/', 'filesize of a missing file');

ok(unlink("cluster://$missing") === false, 'unlink of a missing file is false');
warned('/unlink\(cluster:\/\/.*\): No such file or directory$/', 'unlink of a missing file');

ok(rename("cluster://$missing", "cluster://$prefix/x") === false, 'rename of a missing file is false');
warned('/rename\(cluster:\/\/.*\): No such file or directory$/', 'rename of a missing file');
ok(!file_exists("cluster://$prefix/x"), 'and creates no target');

// 'x': create only.
$before = file_get_contents("p30://$k3");
ok(fopen("cluster://$k3", 'x') === false, "fopen 'x' of an existing file fails");
warned('/Failed to open stream: File exists$/', "fopen 'x' of an existing file");
$ctx = stream_context_create(['cluster' => ['if_none_match' => '*']]);
ok(file_put_contents("cluster://$k3", 'clobbered', 0, $ctx) === false,
   "file_put_contents with 'x' semantics (if_none_match *) on an existing file fails");
warned('/File exists/', 'file_put_contents if_none_match on an existing file');
ok(file_get_contents("p30://$k3") === $before, 'the file is unchanged');

$kx = "$prefix/created.txt";
$fp = fopen("cluster://$kx", 'x');
ok(is_resource($fp), "fopen 'x' of a new file");
fwrite($fp, "new file\n");
ok(fclose($fp), 'fclose stores it');
is_same(file_get_contents("p30://$kx"), "new file\n", 'p30 reads it');
ok(file_put_contents("p30://$prefix/created2.txt", 'fresh', 0, $ctx) === 5,
   'file_put_contents if_none_match * of a new file works');
no_warnings("'x' of new files");

// 'x' losing a race: another node creates the key between fopen and fclose.
$kr = "$prefix/race.txt";
$fp = fopen("cluster://$kr", 'x');
fwrite($fp, 'loser');
is_same(file_put_contents("p30://$kr", 'winner'), 6, 'p30 creates the key meanwhile');
fclose($fp);
warned('/fclose\(\): storing cluster:\/\/.*race.txt failed: .*HTTP 412/', "the 'x' stream's store fails at fclose");
is_same(file_get_contents("cluster://$kr"), 'winner', 'the first writer is kept');

// fflush() stores and reports; later writes replace exactly that version.
$kf = "$prefix/flushed.txt";
$fp = fopen("cluster://$kf", 'w');
fwrite($fp, 'one');
ok(fflush($fp), 'fflush stores what was written');
$v1 = stream_get_meta_data($fp)['wrapper_data']->version();
is_same(file_get_contents("p30://$kf"), 'one', 'p30 sees it before fclose');
fwrite($fp, ' two');
ok(fflush($fp), 'a second fflush');
$v2 = stream_get_meta_data($fp)['wrapper_data']->version();
ok($v2 > $v1, "with a new version ($v1 -> $v2)");
fclose($fp);
is_same(file_get_contents("p30://$kf"), 'one two', 'the whole content');
no_warnings('fflush');

// A node that cannot be reached.
ok(file_get_contents('dead://x') === false, 'file_get_contents from an unreachable node is false');
warned('/cannot reach .*refused/i', 'unreachable node, read');
ok(file_put_contents('dead://x', 'data') === false, 'file_put_contents to an unreachable node is false');
warned('/cannot reach .*refused/i', 'unreachable node, write');
ok(!file_exists('dead://x'), 'file_exists on an unreachable node is false');
no_warnings('file_exists is quiet on an unreachable node');
ok(StreamWrapper::lastError() !== null && strpos(StreamWrapper::lastError(), 'refused') !== false,
   'StreamWrapper::lastError() says why');

$fp = fopen("cluster://$kx", 'r+');
ok(is_resource($fp), "fopen 'r+'");
ok(fseek($fp, 4) === 0 && fwrite($fp, 'F') === 1 && fclose($fp), "fseek and fwrite in 'r+'");
is_same(file_get_contents("p30://$kx"), "new File\n", "the 'r+' change is seen on p30");
ok(fopen("cluster://$kx", 'q') === false, 'an invalid mode fails');
warned("/invalid mode 'q'/", 'invalid mode');

// touch and mkdir.
ok(mkdir("cluster://$prefix/a/b", 0777, true), 'mkdir -p');
ok(is_dir("p30://$prefix/a/b"), 'the directory is seen on p30');
ok(touch("cluster://$prefix/touched"), 'touch creates a file');
is_same(filesize("p30://$prefix/touched"), 0, 'empty, seen on p30');
ok(touch("cluster://$prefix/touched", 1000000000), 'touch with a time');
clearstatcache();   // PHP's stat of the p30:// name above is kept, as for local files
is_same(filemtime("p30://$prefix/touched"), 1000000000, 'the time is the file\'s on p30');
is_same(filesize("p30://$prefix/touched"), 0, 'still empty');
ok(touch("cluster://$prefix/touched2", 1234567890), 'touch with a time creates a file');
is_same(filemtime("p30://$prefix/touched2"), 1234567890, 'with that time, seen on p30');
no_warnings('mkdir/touch');

// Clean up.
foreach ([$k3, $kx, "$prefix/created2.txt", $kr, $kf, $big, "$prefix/touched", "$prefix/touched2"] as $key) {
    ok(unlink("cluster://$key"), "unlink $key");
}
no_warnings('cleanup');

done_testing();
