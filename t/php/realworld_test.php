<?php
// Real-world uses of the cluster:// stream wrapper (issue 12; SPEC section
// 9: a drop-in replacement for file://).  Each case does what a framework
// does with a local directory, and checks what its user would check.
//
//   php realworld_test.php CASE [--option=value ...] ROOT ...
//
// A ROOT is either the http(s):// URL of an existing collection of a DAV
// space (a scheme of clients/php/ClusterStorage.php is registered for it)
// or a local directory.  Given local directories, every check must pass:
// that is how the test itself is checked.  With two ROOTs the second is
// another node of the same cluster, or the same local directory again.
//
//   flysystem ROOT_A ROOT_B       Flysystem's local adapter: ensureDirectoryExists,
//                                 write (LOCK_EX), writeStream (w+b), readStream,
//                                 listContents (RecursiveDirectoryIterator), move,
//                                 copy, delete, deleteDirectory; read back on B
//   wordpress ROOT_A ROOT_B       wp_mkdir_p, wp_unique_filename (scandir),
//                                 uploads (copy + chmod), read back on B
//   cache ROOT_A ROOT_B           Laravel's file cache shared by concurrent
//                                 processes: put (LOCK_EX), get (LOCK_SH),
//                                 increment under LOCK_EX; --procs=N --incr=M
//                                 --readers=R
//   append ROOT_A ROOT_B [ROOT ...]  two processes appending (FILE_APPEND with
//                                 and without LOCK_EX, an open 'a' handle) through
//                                 A and B; every ROOT reads the logs; --lines=L
//   bigcopy ROOT_A                copy() of a local file of --mib=MiB (1024) into
//                                 ROOT_A and back, SHA-256 and peak memory;
//                                 --scratch=DIR for the local files (the system
//                                 temp directory), --keep=1 leaves the stored copy
//   failover-prepare FIRST SECOND     files written through SECOND, readable
//                                 through both and through [FIRST, SECOND]
//   failover-degraded FIRST SECOND --tag=T  with FIRST stopped or frozen, reads,
//                                 writes, mkdir and scandir through [FIRST, SECOND],
//                                 each call within the timeout + a margin
//   failover-unreachable ONLY     only an unreachable node (locally: a missing
//                                 directory): calls fail (false and a warning)
//                                 within the timeout + a margin
//   failover-recovered FIRST SECOND --tags=T1,T2  FIRST serves what was written
//                                 while it was away; the work directory is removed
//
// file_put_contents() with LOCK_EX and without FILE_APPEND is refused by
// PHP itself for every path with "://" but file:// (ext/standard/file.c:
// "Exclusive locks may only be set for regular files"), before any stream
// wrapper is called.  Flysystem's default writeFlags and Laravel's
// FileStore::put do exactly that, so those checks stay, on their own
// (what follows them does not depend on them), and say so when they fail.
//
// Common options: --work=NAME (the case's directory under the ROOTs; made
// up when absent), --timeout=S and --connect-timeout=S (the wrapper's
// options).  The failover phases of one run share one --work.
//
// By hand against a local directory (every check must pass):
//   D=$(mktemp -d); P="php -d error_reporting=-1 -d allow_url_fopen=0 -d display_errors=stderr -d memory_limit=64M t/php/realworld_test.php"
//   $P flysystem $D $D; $P wordpress $D $D; $P cache $D $D; $P append $D $D $D
//   $P bigcopy $D
//   $P failover-prepare $D $D --work=fo; $P failover-degraded $D $D --work=fo --tag=stopped
//   $P failover-degraded $D $D --work=fo --tag=frozen; $P failover-unreachable $D/missing --work=fo
//   $P failover-recovered $D $D --work=fo --tags=stopped,frozen; rmdir $D
//
// Worker processes (started by the cache and append cases with proc_open,
// each a fresh php with the same ini settings) run this file with a
// worker-* CASE; they print one line "RESULT {json}".
require __DIR__ . '/tap.php';

const MIB = 1048576;

// ------------------------------------------------------------ arguments

$args = array_slice($argv, 1);
$case = array_shift($args);
$OPT = [];
$ROOTS = [];
foreach ($args as $a) {
    if (preg_match('/^--([a-z-]+)=(.*)$/s', $a, $m)) {
        $OPT[$m[1]] = $m[2];
    } else {
        $ROOTS[] = $a;
    }
}

function opt($name, $default)
{
    return isset($GLOBALS['OPT'][$name]) ? $GLOBALS['OPT'][$name] : $default;
}

function need_roots($n)
{
    if (count($GLOBALS['ROOTS']) < $n) {
        fwrite(STDERR, "realworld_test.php: this case needs $n ROOT(s); see the comment at the top\n");
        exit(2);
    }
}

function is_url_root($root)
{
    return is_array($root) || preg_match('#^https?://#i', $root);
}

/** The wrapper's options, from --timeout and --connect-timeout. */
function wrapper_options($timeout)
{
    return ['timeout' => (float)opt('timeout', $timeout),
            'connect_timeout' => (float)opt('connect-timeout', 1)];
}

/**
 * Make ROOT usable: a URL (or a list of node URLs) gets a scheme of its
 * own registered; a directory is used as it is.  Returns the prefix that
 * relative paths are appended to ("rwa://" or "/some/dir/").
 */
function mount($root, array $options)
{
    static $n = 0;
    if (!is_url_root($root)) {
        return rtrim($root, '/') . '/';
    }
    if (!class_exists('ClusterStorage\StreamWrapper', false)) {
        require_once __DIR__ . '/../../clients/php/ClusterStorage.php';
    }
    $scheme = 'rw' . chr(97 + $n++);
    try {
        ClusterStorage\StreamWrapper::register($scheme, $root, $options);
    } catch (\Throwable $e) {
        ok(false, "StreamWrapper::register('$scheme', " . json_encode($root) . ')');
        diag(get_class($e) . ': ' . $e->getMessage());
    }
    return "$scheme://";
}

function work_name($case)
{
    return opt('work', 'rw-' . $case . '-' . getmypid() . '-' . substr(md5(uniqid('', true)), 0, 6));
}

function kib($bytes)
{
    return sprintf('%.1f MiB', $bytes / MIB);
}

/** Remove a tree quietly (clean-up, not a check). */
function rm_tree($path)
{
    if (@is_dir($path)) {
        foreach (@scandir($path) ?: [] as $e) {
            if ($e !== '.' && $e !== '..') {
                rm_tree("$path/$e");
            }
        }
        @rmdir($path);
    } elseif (@file_exists($path)) {
        @unlink($path);
    }
    clearstatcache();
}

/** Deterministic test bytes: every byte value, no repeating 4 KiB block. */
function test_bytes($len, $seed)
{
    $out = '';
    for ($i = 0; strlen($out) < $len; $i++) {
        $out .= hash('sha512', "$seed $i", true);
    }
    return substr($out, 0, $len);
}

// ------------------------------------------------------- worker processes

/** -d settings of this php, for the workers. */
function php_ini_args()
{
    $r = [];
    foreach (['error_reporting', 'display_errors', 'allow_url_fopen', 'memory_limit'] as $k) {
        $v = ini_get($k);
        if ($v !== false) {
            $r[] = '-d';
            $r[] = "$k=" . ($v === '' ? '0' : $v);
        }
    }
    return $r;
}

function spawn_worker(array $args)
{
    $cmd = array_merge([PHP_BINARY], php_ini_args(), [__FILE__], $args);
    $proc = proc_open($cmd, [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
    if (!is_resource($proc)) {
        return null;
    }
    stream_set_blocking($pipes[1], false);
    stream_set_blocking($pipes[2], false);
    return ['proc' => $proc, 'pipes' => $pipes, 'out' => '', 'err' => '',
            'name' => implode(' ', array_slice($args, 0, 1)), 'status' => null,
            'killed' => false];
}

function worker_tell(array &$w, $line)
{
    if (isset($w['pipes'][0])) {
        @fwrite($w['pipes'][0], $line);
    }
}

function worker_close_stdin(array &$w)
{
    if (isset($w['pipes'][0])) {
        fclose($w['pipes'][0]);
        unset($w['pipes'][0]);
    }
}

/**
 * Collect the output of all workers until every worker listed in $which
 * has exited or the deadline passed (those left are killed).
 */
function workers_wait(array &$ws, array $which, $deadline)
{
    $done = function () use (&$ws, $which) {
        foreach ($which as $i) {
            if ($ws[$i]['status'] === null) {
                return false;
            }
        }
        return true;
    };
    while (!$done()) {
        $read = [];
        foreach ($ws as $i => $w) {
            foreach ([1, 2] as $k) {
                if (isset($w['pipes'][$k])) {
                    $read[] = $w['pipes'][$k];
                }
            }
        }
        $left = $deadline - microtime(true);
        if ($left <= 0) {
            foreach ($which as $i) {
                if ($ws[$i]['status'] === null) {
                    proc_terminate($ws[$i]['proc'], 9);
                    $ws[$i]['killed'] = true;
                }
            }
            $left = 5;
            $deadline = microtime(true) + 5;
        }
        $open = count($read);       // (stream_select keeps only the ready ones)
        if ($open) {
            $wr = $ex = null;
            $sec = (int)min($left, 1);
            @stream_select($read, $wr, $ex, $sec, $sec ? 0 : 100000);
        }
        foreach ($ws as $i => &$w) {
            foreach ([1 => 'out', 2 => 'err'] as $k => $field) {
                if (!isset($w['pipes'][$k])) {
                    continue;
                }
                $d = fread($w['pipes'][$k], 65536);
                if ($d !== false && $d !== '') {
                    $w[$field] .= $d;
                } elseif (feof($w['pipes'][$k])) {
                    fclose($w['pipes'][$k]);
                    unset($w['pipes'][$k]);
                }
            }
            if ($w['status'] === null && !isset($w['pipes'][1]) && !isset($w['pipes'][2])) {
                worker_close_stdin($w);
                $w['status'] = proc_close($w['proc']);
            }
        }
        unset($w);
        if (!$open && !$done()) {
            // Every pipe is closed: the rest can only be reaped.
            foreach ($which as $i) {
                if ($ws[$i]['status'] === null) {
                    worker_close_stdin($ws[$i]);
                    $ws[$i]['status'] = proc_close($ws[$i]['proc']);
                }
            }
        }
    }
}

/** The RESULT of a worker, or null; its stray output goes to diag. */
function worker_result(array $w)
{
    $res = null;
    foreach (explode("\n", $w['out']) as $l) {
        if (strncmp($l, 'RESULT ', 7) === 0) {
            $res = json_decode(substr($l, 7), true);
        } elseif (trim($l) !== '') {
            diag("$w[name] said: $l");
        }
    }
    foreach (explode("\n", trim($w['err'])) as $l) {
        if ($l !== '') {
            diag("$w[name] (stderr): $l");
        }
    }
    return $res;
}

/** Checks every worker makes: it ran to its end, and had no warnings. */
function check_worker(array $w, $desc)
{
    $res = worker_result($w);
    ok(!$w['killed'] && $w['status'] === 0 && is_array($res),
       "$desc: ran to its end (exit status $w[status]" . ($w['killed'] ? ', killed at the deadline' : '') . ')');
    $warn = is_array($res) && isset($res['warnings']) ? $res['warnings'] : ['(no result)'];
    ok(!$warn, "$desc: no warnings");
    foreach (array_slice($warn, 0, 5) as $m) {
        diag("warning: $m");
    }
    return is_array($res) ? $res : [];
}

function emit_result(array $res)
{
    $res['warnings'] = array_slice(take_warnings(), 0, 20);
    echo 'RESULT ' . json_encode($res, JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR) . "\n";
}

/** Block until the parent says go (a line on stdin). */
function wait_go()
{
    fgets(STDIN);
}

/** True once the parent closed our stdin. */
function stop_requested()
{
    $r = [STDIN];
    $w = $e = null;
    if (@stream_select($r, $w, $e, 0) > 0) {
        $d = fread(STDIN, 64);
        return ($d === '' || $d === false) && feof(STDIN);
    }
    return false;
}

// =================================================== 1. Flysystem-style

/** Flysystem's LocalFilesystemAdapter::ensureDirectoryExists, returning the error. */
function fly_ensure_directory_exists($dirname, $visibility, &$error)
{
    $error = '';
    if (is_dir($dirname)) {
        return true;
    }
    error_clear_last();
    if (!@mkdir($dirname, $visibility, true)) {
        $e = error_get_last();
        $error = isset($e['message']) ? $e['message'] : '';
    }
    clearstatcache(true, $dirname);
    return is_dir($dirname);
}

/** LocalFilesystemAdapter::write with its writeFlags: the byte count or false. */
function fly_write($root, $path, $contents, $writeFlags)
{
    $location = "$root/$path";
    if (!fly_ensure_directory_exists(dirname($location), 0755, $err)) {
        diag("ensureDirectoryExists(" . dirname($location) . "): $err");
        return false;
    }
    error_clear_last();
    $r = @file_put_contents($location, $contents, $writeFlags);
    if ($r === false) {
        $e = error_get_last();
        diag("UnableToWriteFile $path: " . (isset($e['message']) ? $e['message'] : ''));
        lock_ex_explain(isset($e['message']) ? $e['message'] : '');
    }
    return $r;
}

/**
 * PHP refuses file_put_contents() with LOCK_EX (without FILE_APPEND) for
 * every path with "://" but file:// (ext/standard/file.c), before any
 * wrapper runs: a difference clients/php/README.md lists (fpc-lock-ex,
 * flysystem-write-lock-ex), whose workaround is the plain, atomic store.
 */
function php_refuses_lock_ex($path)
{
    return strpos($path, '://') !== false && strncasecmp($path, 'file://', 7) !== 0;
}

/** Say why, when PHP itself refused file_put_contents(LOCK_EX). */
function lock_ex_explain($message)
{
    if (strpos($message, 'Exclusive locks may only be set for regular files') !== false) {
        diag('(PHP refuses file_put_contents() with LOCK_EX for every path with "://" but file://,');
        diag(' in ext/standard/file.c, before any stream wrapper is called)');
    }
}

/** listContents: path relative to $root => 'dir' or 'file SIZE'; every entry's mtime checked. */
function fly_list($root, $deep, &$badMtime)
{
    $badMtime = [];
    $out = [];
    if (!is_dir($root)) {
        return $out;
    }
    $it = $deep
        ? new RecursiveIteratorIterator(new RecursiveDirectoryIterator($root, FilesystemIterator::SKIP_DOTS),
                                        RecursiveIteratorIterator::SELF_FIRST)
        : new DirectoryIterator($root);
    foreach ($it as $info) {
        if ($info instanceof DirectoryIterator && $info->isDot()) {
            continue;
        }
        if ($info->isLink()) {
            continue;
        }
        $rel = substr($info->getPathname(), strlen("$root/"));
        $mtime = $info->getMTime();
        $info->getPerms();          // Flysystem turns these into a visibility
        if (!is_int($mtime) || abs($mtime - time()) > 86400) {
            $badMtime[] = "$rel: " . var_export($mtime, true);
        }
        $out[$rel] = $info->isDir() ? 'dir' : 'file ' . $info->getSize();
    }
    ksort($out);
    return $out;
}

/** LocalFilesystemAdapter::deleteDirectory (getPathname: getRealPath is false for a wrapper). */
function fly_delete_directory($root, $prefix, &$failed)
{
    $failed = [];
    $location = "$root/$prefix";
    if (!is_dir($location)) {
        return true;
    }
    $contents = new RecursiveIteratorIterator(
        new RecursiveDirectoryIterator($location, FilesystemIterator::SKIP_DOTS),
        RecursiveIteratorIterator::CHILD_FIRST);
    foreach ($contents as $file) {
        $ok = $file->getType() === 'dir' ? @rmdir($file->getPathname()) : @unlink($file->getPathname());
        if (!$ok) {
            $e = error_get_last();
            $failed[] = $file->getPathname() . ': ' . (isset($e['message']) ? $e['message'] : '');
        }
    }
    unset($contents);
    if (!@rmdir($location)) {
        $e = error_get_last();
        $failed[] = "$location: " . (isset($e['message']) ? $e['message'] : '');
        return false;
    }
    return !$failed;
}

function case_flysystem()
{
    need_roots(2);
    $o = wrapper_options(10);
    $work = work_name('fly');
    $A = mount($GLOBALS['ROOTS'][0], $o) . $work;
    $B = mount($GLOBALS['ROOTS'][1], $o) . $work;
    take_warnings();

    ok(!is_dir("$A/a/b/c"), 'a directory not made yet: is_dir is false');
    ok(fly_ensure_directory_exists($A, 0755, $err), 'ensureDirectoryExists of the adapter root') or diag($err);
    ok(fly_ensure_directory_exists("$A/a/b/c", 0755, $err), 'ensureDirectoryExists(a/b/c): mkdir(0755, recursive), then is_dir') or diag($err);
    ok(is_dir("$B/a/b/c") && is_dir("$B/a/b") && is_dir("$B/a"), 'a/b/c and its parents are directories on node B');
    ok(fly_ensure_directory_exists("$A/a/b/c", 0755, $err), 'ensureDirectoryExists again: it exists');
    no_warnings('ensureDirectoryExists');

    // write() of an adapter with the default writeFlags, LOCK_EX: PHP
    // refuses it on any wrapper (README); writeFlags 0 is the workaround
    $csv = "id,name\n1,alpha\n2,beta\n";
    if (php_refuses_lock_ex($A)) {
        take_warnings();
        ok(@fly_write($A, 'refused/report.csv', $csv, LOCK_EX) === false,
           'write with writeFlags LOCK_EX fails: PHP refuses file_put_contents(LOCK_EX) on wrappers (README: flysystem-write-lock-ex)');
        $e = error_get_last();
        ok(isset($e['message']) && strpos($e['message'], 'Exclusive locks may only be set for regular files') !== false,
           "with PHP's own warning") or diag(isset($e['message']) ? $e['message'] : 'no warning');
        ok(!file_exists("$B/refused/report.csv"), 'and nothing is stored');
        take_warnings();
        rm_tree("$A/refused");
    }
    $lockFlags = php_refuses_lock_ex($A) ? 0 : LOCK_EX;
    is_same(fly_write($A, 'locked/report.csv', $csv, $lockFlags), strlen($csv),
            'write locked/report.csv with the default writeFlags (file_put_contents LOCK_EX) returns the byte count');
    is_same(@file_get_contents("$B/locked/report.csv"), $csv, 'read(locked/report.csv) on node B returns it');
    $csv2 = "id\n";
    is_same(fly_write($A, 'locked/report.csv', $csv2, $lockFlags), strlen($csv2),
            'write over it (LOCK_EX) with fewer bytes returns the byte count');
    is_same(@file_get_contents("$B/locked/report.csv"), $csv2, 'node B reads the new content, no tail of the old one');
    no_warnings('write with LOCK_EX');
    rm_tree("$A/locked");

    // The rest through an adapter made with writeFlags 0 (so that the
    // checks below do not depend on the one above).
    $hello = "Hello, world!\n";
    is_same(fly_write($A, 'a/b/c/hello.txt', $hello, 0), strlen($hello), 'write a/b/c/hello.txt (writeFlags 0) returns the byte count');
    is_same(@file_get_contents("$B/a/b/c/hello.txt"), $hello, 'read(a/b/c/hello.txt) on node B returns it');
    ok(is_file("$B/a/b/c/hello.txt"), 'fileExists (is_file) on node B');
    is_same(filesize("$B/a/b/c/hello.txt"), strlen($hello), 'fileSize on node B');
    $bin = test_bytes(200000, 'fly binary');
    $binName = 'a/b/naïve report 2024.bin';
    is_same(fly_write($A, $binName, $bin, 0), strlen($bin), "write '$binName' (200 kB, every byte value, a space and UTF-8 in the name)");
    $got = @file_get_contents("$B/$binName");
    ok($got === $bin, 'read on node B returns the same bytes') or diag('got ' . var_export(is_string($got) ? strlen($got) . ' bytes' : $got, true));
    $bye = "Bye\n";
    is_same(fly_write($A, 'a/b/c/hello.txt', $bye, 0), strlen($bye), 'write over hello.txt with fewer bytes');
    is_same(@file_get_contents("$B/a/b/c/hello.txt"), $bye, 'node B reads the new content, no tail of the old one');
    clearstatcache();
    is_same(filesize("$B/a/b/c/hello.txt"), strlen($bye), 'and its new size');
    no_warnings('write/read');

    // writeStream(): fopen w+b + stream_copy_to_stream (Flysystem 1)
    $data = test_bytes(307200, 'fly stream');
    $src = fopen('php://temp', 'w+b');
    fwrite($src, $data);
    rewind($src);
    ok(fly_ensure_directory_exists("$A/x/y", 0755, $err), 'ensureDirectoryExists(x/y)');
    $stream = fopen("$A/x/y/stream.bin", 'w+b');
    ok(is_resource($stream), "writeStream: fopen('x/y/stream.bin', 'w+b')");
    $n = is_resource($stream) ? stream_copy_to_stream($src, $stream) : false;
    is_same($n, strlen($data), 'stream_copy_to_stream copies every byte');
    ok(is_resource($stream) && fclose($stream), 'fclose of the written stream');
    fclose($src);
    $got = @file_get_contents("$B/x/y/stream.bin");
    ok($got === $data, 'node B reads the streamed file back (same 300 kB)');
    no_warnings('writeStream');

    // readStream(): fopen rb, read, seek for a range
    $fp = fopen("$B/x/y/stream.bin", 'rb');
    ok(is_resource($fp), "readStream: fopen(rb) on node B");
    if (is_resource($fp)) {
        is_same(fread($fp, 10), substr($data, 0, 10), 'fread of the first bytes');
        is_same(fseek($fp, 250000), 0, 'fseek into the stream');
        is_same(fread($fp, 16), substr($data, 250000, 16), 'fread after fseek returns the bytes at that offset');
        is_same(ftell($fp), 250016, 'ftell after it');
        fclose($fp);
    }
    no_warnings('readStream');

    // listContents()
    $want = [
        'a' => 'dir', 'a/b' => 'dir', 'a/b/c' => 'dir',
        'a/b/c/hello.txt' => 'file ' . strlen($bye), $binName => 'file ' . strlen($bin),
        'x' => 'dir', 'x/y' => 'dir', 'x/y/stream.bin' => 'file ' . strlen($data),
    ];
    ksort($want);
    is_same(fly_list($B, true, $bad), $want, 'listContents(deep) on node B: exactly what was written, types and sizes');
    ok(!$bad, 'every listed entry has a lastModified of about now') or diag(implode("\n", $bad));
    is_same(fly_list($B, false, $bad), ['a' => 'dir', 'x' => 'dir'], 'listContents(shallow) on node B');
    no_warnings('listContents');

    // move(), copy(), delete()
    ok(fly_ensure_directory_exists("$A/x", 0755, $err) && @rename("$A/a/b/c/hello.txt", "$A/x/moved.txt"),
       'move a/b/c/hello.txt to x/moved.txt (rename)');
    clearstatcache();
    ok(!file_exists("$B/a/b/c/hello.txt"), 'node B: the old path is gone');
    is_same(@file_get_contents("$B/x/moved.txt"), $bye, 'node B: the new path has the content');
    ok(@copy("$A/x/moved.txt", "$A/x/copy.txt"), 'copy x/moved.txt to x/copy.txt');
    is_same(@file_get_contents("$B/x/copy.txt"), $bye, 'node B reads the copy');
    ok(file_exists("$A/x/copy.txt") && @unlink("$A/x/copy.txt"), 'delete x/copy.txt (file_exists, unlink)');
    clearstatcache();
    ok(!file_exists("$B/x/copy.txt"), 'node B: the deleted file is gone');
    no_warnings('move/copy/delete');

    // deleteDirectory()
    ok(fly_delete_directory($A, 'a', $failed), 'deleteDirectory(a): every entry deleted child first, then a') or diag(implode("\n", $failed));
    clearstatcache();
    ok(!is_dir("$B/a") && !file_exists("$B/$binName"), 'node B: a/ and what was in it are gone');
    ok(is_dir("$B/x") && is_file("$B/x/y/stream.bin"), 'node B: x/ is untouched');
    is_same(fly_list($B, true, $bad), ['x' => 'dir', 'x/moved.txt' => 'file ' . strlen($bye), 'x/y' => 'dir',
                                       'x/y/stream.bin' => 'file ' . strlen($data)],
            'listContents(deep) on node B after it');
    ok(fly_delete_directory($A, '', $failed), 'deleteDirectory of the whole adapter root') or diag(implode("\n", $failed));
    clearstatcache();
    ok(!file_exists("$B") && !is_dir("$B"), 'node B: the root is gone');
    no_warnings('deleteDirectory');
    rm_tree($A);
}

// =================================================== 2. WordPress-style

/** wp_mkdir_p() of WordPress 6 (wp-includes/functions.php). */
function wp_mkdir_p($target)
{
    $wrapper = null;
    if (preg_match('#^[a-z][a-z0-9+.-]*://#i', $target)) {      // wp_is_stream()
        list($wrapper, $target) = explode('://', $target, 2);
    }
    $target = str_replace('//', '/', $target);
    if (null !== $wrapper) {
        $target = $wrapper . '://' . $target;
    }
    $target = rtrim($target, '/');
    if (empty($target)) {
        $target = '/';
    }
    if (file_exists($target)) {
        return @is_dir($target);
    }
    if (strpos($target, '../') !== false) {
        return false;
    }
    $target_parent = dirname($target);
    while ('.' !== $target_parent && !is_dir($target_parent) && dirname($target_parent) !== $target_parent) {
        $target_parent = dirname($target_parent);
    }
    $stat = @stat($target_parent);
    $dir_perms = $stat ? $stat['mode'] & 0007777 : 0777;
    if (@mkdir($target, $dir_perms, true)) {
        if (($dir_perms & ~umask()) != $dir_perms) {
            $folder_parts = explode('/', substr($target, strlen($target_parent) + 1));
            for ($i = 1, $c = count($folder_parts); $i <= $c; $i++) {
                chmod($target_parent . '/' . implode('/', array_slice($folder_parts, 0, $i)), $dir_perms);
            }
        }
        return true;
    }
    return false;
}

/** _wp_check_existing_file_names() */
function wp_check_existing_file_names($filename, $files)
{
    $fname = pathinfo($filename, PATHINFO_FILENAME);
    $ext = pathinfo($filename, PATHINFO_EXTENSION);
    if (empty($fname)) {
        return false;
    }
    if ($ext) {
        $ext = ".$ext";
    }
    $regex = '/^' . preg_quote($fname) . '-(?:\d+x\d+|scaled|rotated)' . preg_quote($ext) . '$/i';
    foreach ($files as $file) {
        if (preg_match($regex, $file)) {
            return true;
        }
    }
    return false;
}

/** wp_unique_filename() without filters and the alternate-extension check. */
function wp_unique_filename($dir, $filename)
{
    $ext = pathinfo($filename, PATHINFO_EXTENSION);
    $name = pathinfo($filename, PATHINFO_BASENAME);
    if ($ext) {
        $ext = '.' . $ext;
    }
    if ($name === $ext) {
        $name = '';
    }
    $number = '';
    $fname = pathinfo($filename, PATHINFO_FILENAME);
    if ($fname && preg_match('/-(?:\d+x\d+|scaled|rotated)$/', $fname)) {
        $number = 1;
        $filename = str_replace("{$fname}{$ext}", "{$fname}-{$number}{$ext}", $filename);
    }
    $lc_ext = strtolower($ext);
    while (file_exists($dir . "/{$filename}")) {
        $new_number = (int)$number + 1;
        if ('' === "{$number}{$ext}") {
            $filename = "{$filename}-{$new_number}";
        } else {
            $filename = str_replace(["-{$number}{$ext}", "{$number}{$ext}"], "-{$new_number}{$ext}", $filename);
        }
        $number = $new_number;
    }
    if ($name && $ext && @is_dir($dir)) {
        $files = @scandir($dir);
        if (!empty($files)) {
            $files = array_diff($files, ['.', '..']);
        }
        if (!empty($files)) {
            $count = count($files);
            $i = 0;
            while ($i <= $count && wp_check_existing_file_names($filename, $files)) {
                $new_number = (int)$number + 1;
                $filename = str_replace(["-{$number}{$lc_ext}", "{$number}{$lc_ext}"], "-{$new_number}{$lc_ext}", $filename);
                $number = $new_number;
                ++$i;
            }
        }
    }
    return $filename;
}

/**
 * _wp_handle_upload() for a side-loaded file: a unique name, copy() from
 * the temporary file, unlink it, chmod 0644.  Returns [name, chmod result] or false.
 */
function wp_handle_sideload($tmp, $name, $dir)
{
    $filename = wp_unique_filename($dir, $name);
    $new_file = "$dir/$filename";
    if (!@copy($tmp, $new_file)) {
        $e = error_get_last();
        diag("copy to $new_file: " . (isset($e['message']) ? $e['message'] : ''));
        @unlink($tmp);
        return false;
    }
    unlink($tmp);
    $stat = stat(dirname($new_file));       // WordPress takes the permissions from here
    $chmod = chmod($new_file, 0644);
    return [$filename, is_array($stat) && $chmod];
}

function case_wordpress()
{
    need_roots(2);
    $o = wrapper_options(10);
    $scratch = rtrim(opt('scratch', sys_get_temp_dir()), '/');
    $work = work_name('wp');
    $A = mount($GLOBALS['ROOTS'][0], $o) . $work;
    $B = mount($GLOBALS['ROOTS'][1], $o) . $work;
    take_warnings();
    $uploads = "$A/wp-content/uploads";
    $dir = "$uploads/2024/05";
    $dirB = "$B/wp-content/uploads/2024/05";

    ok(wp_mkdir_p($dir), 'wp_mkdir_p(wp-content/uploads/2024/05) returns true');
    ok(is_dir($dir) && is_dir($dirB), 'the upload directory is a directory, on node A and on node B');
    ok(wp_mkdir_p($dir), 'wp_mkdir_p of the existing directory returns true');
    ok(is_writable($dir), 'the upload directory is writable (is_writable, as Site Health checks)');
    no_warnings('wp_mkdir_p');

    $uploaded = [];
    $upload = function ($name, $content) use ($scratch, $dir, &$uploaded) {
        $tmp = tempnam($scratch, 'wpup');
        file_put_contents($tmp, $content);
        $r = wp_handle_sideload($tmp, $name, $dir);
        if ($r) {
            $uploaded[$r[0]] = $content;
        }
        return $r;
    };
    $jpeg = function ($n) { return "\xFF\xD8\xFF\xE0" . test_bytes(30000 + $n, "jpeg $n") . "\xFF\xD9"; };

    is_same($upload('photo.jpg', $jpeg(1)), ['photo.jpg', true], 'upload photo.jpg: stored as photo.jpg, chmod(0644) returns true');
    // The image sub-sizes WordPress writes next to it.
    foreach (['photo-150x150.jpg', 'photo-300x200.jpg'] as $i => $sub) {
        $c = $jpeg(10 + $i);
        is_same(file_put_contents("$dir/$sub", $c), strlen($c), "the sub-size $sub is written");
        $uploaded[$sub] = $c;
    }
    is_same($upload('photo.jpg', $jpeg(2)), ['photo-1.jpg', true], 'upload photo.jpg again: photo-1.jpg');
    is_same($upload('photo.jpg', $jpeg(3)), ['photo-2.jpg', true], 'and again: photo-2.jpg');
    // A sub-size left from an earlier upload: only scandir() shows the clash.
    $c = $jpeg(20);
    is_same(file_put_contents("$dir/banner-1024x768.png", $c), strlen($c), 'an old sub-size banner-1024x768.png is there');
    $uploaded['banner-1024x768.png'] = $c;
    is_same($upload('banner.png', $jpeg(4)), ['banner-1.png', true],
            'upload banner.png: banner-1.png (wp_unique_filename saw banner-1024x768.png through scandir)');
    is_same($upload('photo-150x150.jpg', $jpeg(5)), ['photo-150x150-1.jpg', true],
            'upload a file named like a sub-size: photo-150x150-1.jpg');
    no_warnings('uploads');

    $list = scandir($dirB);
    $names = is_array($list) ? array_values(array_diff($list, ['.', '..'])) : $list;
    $want = array_keys($uploaded);
    sort($want);
    is_same($names, $want, 'scandir of the upload directory on node B lists every upload, sorted');
    $same = 0;
    foreach ($uploaded as $n => $c) {
        $same += @file_get_contents("$dirB/$n") === $c ? 1 : 0;
    }
    is_same($same, count($uploaded), 'node B serves every uploaded file with its bytes');
    no_warnings('listing');

    // wp_delete_file(), then the name is free again
    ok(@unlink("$dir/photo-1.jpg"), 'wp_delete_file(photo-1.jpg): unlink returns true');
    clearstatcache();
    ok(!file_exists("$dirB/photo-1.jpg"), 'node B: photo-1.jpg is gone');
    is_same($upload('photo.jpg', $jpeg(6)), ['photo-1.jpg', true], 'upload photo.jpg once more: the freed name photo-1.jpg');
    is_same(@file_get_contents("$dirB/photo-1.jpg"), $uploaded['photo-1.jpg'], 'node B serves the new photo-1.jpg');
    no_warnings('delete and upload again');
    rm_tree($A);
    clearstatcache();
    ok(!file_exists($A), 'the test tree is removed');
}

// =================================================== 3. Laravel file cache

/** FileStore::path(): two levels of sha1 directories. */
function cache_path($dir, $key)
{
    $hash = sha1($key);
    $parts = array_slice(str_split($hash, 2), 0, 2);
    return $dir . '/' . implode('/', $parts) . '/' . $hash;
}

/** FileStore::put(): ensureCacheDirectoryExists, then file_put_contents LOCK_EX. */
function cache_put($dir, $key, $value, $seconds, &$error)
{
    $error = '';
    $path = cache_path($dir, $key);
    $directory = dirname($path);
    if (!file_exists($directory)) {
        @mkdir($directory, 0777, true);        // Filesystem::makeDirectory(force)
    }
    $contents = (time() + $seconds) . serialize($value);
    error_clear_last();
    // LOCK_EX where PHP allows it; on cluster:// the store is atomic without (README)
    $r = @file_put_contents($path, $contents, php_refuses_lock_ex($path) ? 0 : LOCK_EX);
    if ($r !== strlen($contents)) {
        $e = error_get_last();
        $error = 'put returned ' . var_export($r, true) . (isset($e['message']) ? ": $e[message]" : '');
        return false;
    }
    return true;
}

/** Filesystem::sharedGet(): fopen rb, flock LOCK_SH, read, unlock.  false if it failed. */
function shared_get($path, &$error)
{
    $error = '';
    error_clear_last();
    $handle = @fopen($path, 'rb');
    if (!$handle) {
        $e = error_get_last();
        $error = 'fopen: ' . (isset($e['message']) ? $e['message'] : '');
        return false;
    }
    $contents = false;
    try {
        if (@flock($handle, LOCK_SH)) {
            clearstatcache(true, $path);
            $size = @filesize($path);
            $contents = fread($handle, $size ?: 1);
            // (Laravel reads filesize() bytes; a longer value is read on)
            while ($contents !== false && !feof($handle) && strlen($contents) < 1 << 20) {
                $more = fread($handle, 8192);
                if ($more === false || $more === '') {
                    break;
                }
                $contents .= $more;
            }
            flock($handle, LOCK_UN);
        } else {
            $e = error_get_last();
            $error = 'flock LOCK_SH: ' . (isset($e['message']) ? $e['message'] : '');
        }
    } finally {
        fclose($handle);
    }
    return $contents;
}

/** The value of a payload "EXPIRY(10 digits)serialized", or [false, why]. */
function cache_decode($contents)
{
    if ($contents === '' || $contents === false) {
        return [false, 'empty'];
    }
    if (!preg_match('/^\d{10}/', $contents)) {
        return [false, 'torn: no expiry: ' . short(var_export(substr($contents, 0, 40), true))];
    }
    if ((int)substr($contents, 0, 10) <= time()) {
        return [false, 'expired'];
    }
    $s = substr($contents, 10);
    $v = @unserialize($s);
    if ($v === false && $s !== serialize(false)) {
        return [false, 'torn: does not unserialize (' . strlen($contents) . ' bytes)'];
    }
    return [true, $v];
}

/** Illuminate\Filesystem\LockableFile: fopen c+, flock LOCK_EX, ftruncate, fwrite, fflush, fclose. */
function locked_write($path, $contents, &$error)
{
    $error = '';
    error_clear_last();
    $fp = @fopen($path, 'c+');
    $ok = $fp && @flock($fp, LOCK_EX) && @rewind($fp) && @ftruncate($fp, 0)
        && @fwrite($fp, $contents) === strlen($contents) && @fflush($fp);
    if (!$ok) {
        $e = error_get_last();
        $error = isset($e['message']) ? $e['message'] : 'failed';
    }
    if ($fp) {
        $ok = @fclose($fp) && $ok;
    }
    return $ok;
}

/** Increment under LOCK_EX: fopen c+, flock, read, ftruncate, rewind, write, fflush, unlock. */
function cache_increment($dir, $key, &$error)
{
    $error = '';
    $path = cache_path($dir, $key);
    error_clear_last();
    $fp = @fopen($path, 'c+');
    if (!$fp) {
        $e = error_get_last();
        $error = 'fopen c+: ' . (isset($e['message']) ? $e['message'] : '');
        return false;
    }
    $new = false;
    if (!@flock($fp, LOCK_EX)) {
        $e = error_get_last();
        $error = 'flock LOCK_EX: ' . (isset($e['message']) ? $e['message'] : '');
    } else {
        $contents = stream_get_contents($fp);
        list($ok, $v) = cache_decode($contents);
        if (!$ok || !is_int($v)) {
            $error = 'read under LOCK_EX: ' . ($ok ? 'not an int' : $v);
        } else {
            $payload = substr($contents, 0, 10) . serialize($v + 1);
            if (!ftruncate($fp, 0)) {
                $error = 'ftruncate failed';
            } elseif (!rewind($fp)) {
                $error = 'rewind failed';
            } elseif (fwrite($fp, $payload) !== strlen($payload)) {
                $error = 'fwrite short';
            } elseif (!fflush($fp)) {
                $error = 'fflush failed';
            } else {
                $new = $v + 1;
            }
        }
        if (!flock($fp, LOCK_UN) && $error === '') {
            $error = 'flock LOCK_UN failed';
            $new = false;
        }
    }
    if (!fclose($fp) && $error === '') {
        $error = 'fclose failed';
        $new = false;
    }
    return $new;
}

/** The settings values the writer cycles through: a torn one cannot pass settings_ok(). */
function settings_value($round)
{
    return ['round' => $round, 'pad' => str_repeat(chr(65 + $round % 26), $round % 2 ? 20000 : 10)];
}

function settings_ok($v)
{
    return is_array($v) && isset($v['round']) && is_int($v['round']) && $v === settings_value($v['round']);
}

function worker_cache_incr($root, $store, $id, $m)
{
    $P = mount($root, wrapper_options(30));
    $dir = $P . $store;
    $res = ['done' => 0, 'errors' => []];
    wait_go();
    // a key of its own, its directories made while the others make theirs
    if (!cache_put($dir, "worker:$id", ['id' => (int)$id, 'pid' => getmypid()], 3600, $err)) {
        $res['errors'][] = "put worker:$id: $err";
    }
    for ($j = 0; $j < $m; $j++) {
        $v = cache_increment($dir, 'counter', $err);
        if ($v === false) {
            $res['errors'][] = "increment $j: $err";
        } else {
            $res['done']++;
        }
    }
    emit_result($res);
}

function worker_cache_read($root, $store)
{
    $P = mount($root, wrapper_options(30));
    $dir = $P . $store;
    $res = ['reads' => 0, 'settings_reads' => 0, 'empty' => 0, 'torn' => 0, 'backwards' => 0,
            'failed' => 0, 'distinct' => 0, 'last' => null, 'examples' => []];
    $last = -1;
    $seen = [];
    $note = function ($what) use (&$res) {
        if (count($res['examples']) < 5) {
            $res['examples'][] = $what;
        }
    };
    wait_go();
    while (!stop_requested() && $res['failed'] < 20) {      // (failing, it stops spinning)
        $c = shared_get(cache_path($dir, 'counter'), $err);
        $res['reads']++;
        if ($c === false) {
            $res['failed']++;
            $note("counter: $err");
        } else {
            list($ok, $v) = cache_decode($c);
            if (!$ok || !is_int($v)) {
                $res[$ok || $v !== 'empty' ? 'torn' : 'empty']++;
                $note('counter: ' . ($ok ? 'not an int: ' . short(var_export($v, true)) : $v));
            } else {
                if ($v < $last) {
                    $res['backwards']++;
                    $note("counter went back from $last to $v");
                }
                $last = max($last, $v);
                $seen[$v] = true;
            }
        }
        $s = shared_get(cache_path($dir, 'settings'), $err);
        $res['settings_reads']++;
        if ($s === false) {
            $res['failed']++;
            $note("settings: $err");
        } else {
            list($ok, $v) = cache_decode($s);
            if (!$ok || !settings_ok($v)) {
                $res[$ok || $v !== 'empty' ? 'torn' : 'empty']++;
                $note('settings: ' . ($ok ? 'a value never written' : $v));
            }
        }
    }
    $res['distinct'] = count($seen);
    $res['last'] = $last;
    emit_result($res);
}

function worker_cache_write($root, $store)
{
    $P = mount($root, wrapper_options(30));
    $dir = $P . $store;
    $res = ['puts' => 0, 'errors' => []];
    wait_go();
    for ($round = 1; !stop_requested(); $round++) {
        if (cache_put($dir, 'settings', settings_value($round), 3600, $err)) {
            $res['puts']++;
        } else {
            $res['errors'][] = "round $round: $err";
            if (count($res['errors']) >= 5) {
                break;              // (no use spinning: the check has failed)
            }
        }
    }
    emit_result($res);
}

function case_cache()
{
    need_roots(2);
    $procs = (int)opt('procs', 4);
    $incr = (int)opt('incr', 25);
    $readers = (int)opt('readers', 2);
    $roots = $GLOBALS['ROOTS'];
    $o = wrapper_options(30);
    $work = work_name('cache');
    $PA = mount($roots[0], $o);
    $PB = mount($roots[1], $o);
    $store = "$work/storage/framework/cache/data";
    take_warnings();

    if (!ok(cache_put($PA . $store, 'counter', 0, 3600, $err), 'Cache::put(counter, 0) (file_put_contents LOCK_EX, after making its directories)')) {
        diag($err);
        lock_ex_explain($err);
        // So that the increments and reads below still say something.
        ok(locked_write(cache_path($PA . $store, 'counter'), (time() + 3600) . serialize(0), $err),
           'the counter written instead as LockableFile does (fopen c+, flock LOCK_EX, ftruncate, fwrite)') or diag($err);
    }
    if (!ok(cache_put($PA . $store, 'settings', settings_value(0), 3600, $err), 'Cache::put(settings, [...])')) {
        diag($err);
        locked_write(cache_path($PA . $store, 'settings'), (time() + 3600) . serialize(settings_value(0)), $err);
    }
    list($ok, $v) = cache_decode(shared_get(cache_path($PB . $store, 'counter'), $err));
    is_same($v, 0, 'Cache::get(counter) on node B (LOCK_SH) is 0');
    no_warnings('first put and get');

    $ws = [];
    $incrs = $others = [];
    for ($i = 0; $i < $procs; $i++) {
        $incrs[] = count($ws);
        $ws[] = spawn_worker(['worker-cache-incr', $roots[$i % 2], $store, (string)$i, (string)$incr]);
    }
    $writer = count($ws);
    $others[] = $writer;
    $ws[] = spawn_worker(['worker-cache-write', $roots[1], $store]);
    $rdrs = [];
    for ($i = 0; $i < $readers; $i++) {
        $rdrs[] = $others[] = count($ws);
        $ws[] = spawn_worker(['worker-cache-read', $roots[($i + 1) % 2], $store]);
    }
    if (!ok(!in_array(null, $ws, true), count($ws) . ' php processes started (proc_open)')) {
        return;
    }
    foreach ($ws as &$w) {
        worker_tell($w, "go\n");
    }
    unset($w);
    $t0 = microtime(true);
    workers_wait($ws, $incrs, $t0 + (float)opt('deadline', 150));
    $took = microtime(true) - $t0;
    foreach ($others as $i) {
        worker_close_stdin($ws[$i]);
    }
    workers_wait($ws, array_keys($ws), microtime(true) + 60);
    diag(sprintf('%d x %d increments took %.1f s', $procs, $incr, $took));

    foreach ($incrs as $k => $i) {
        $r = check_worker($ws[$i], "incrementer $k (node " . ($k % 2 ? 'B' : 'A') . ')');
        is_same(isset($r['done']) ? $r['done'] : null, $incr, "incrementer $k: all $incr increments under LOCK_EX succeeded");
        foreach (array_slice(isset($r['errors']) ? $r['errors'] : [], 0, 5) as $e) {
            diag($e);
        }
        lock_ex_explain(implode(' ', isset($r['errors']) ? $r['errors'] : []));
    }
    $r = check_worker($ws[$writer], 'settings writer (node B)');
    ok(isset($r['puts']) && $r['puts'] > 0 && !$r['errors'],
       'settings writer: every Cache::put succeeded (' . (isset($r['puts']) ? $r['puts'] : 0) . ' puts)');
    foreach (array_slice(isset($r['errors']) ? $r['errors'] : [], 0, 5) as $e) {
        diag($e);
    }
    lock_ex_explain(implode(' ', isset($r['errors']) ? $r['errors'] : []));
    $changes = 0;
    foreach ($rdrs as $k => $i) {
        $r = check_worker($ws[$i], "reader $k (node " . ($k % 2 ? 'A' : 'B') . ')');
        $r += ['reads' => 0, 'empty' => 0, 'torn' => 0, 'backwards' => 0, 'failed' => 0, 'distinct' => 0, 'examples' => []];
        diag("reader $k: $r[reads] reads, $r[distinct] distinct counter values");
        ok($r['reads'] >= 3, "reader $k read while the increments ran ($r[reads] times)");
        ok($r['failed'] == 0, "reader $k: every Cache::get (fopen, flock LOCK_SH, fread) worked");
        ok($r['empty'] == 0, "reader $k never saw an empty value");
        ok($r['torn'] == 0, "reader $k never saw a torn value");
        ok($r['backwards'] == 0, "reader $k never saw the counter go back");
        foreach ($r['examples'] as $e) {
            diag("reader $k: $e");
        }
        $changes += $r['distinct'] > 1 ? 1 : 0;
    }
    ok($readers == 0 || $changes > 0, 'the readers saw the counter change while they read');

    $total = $procs * $incr;
    foreach (['A' => $PA, 'B' => $PB] as $n => $P) {
        $d = $P . $store;
        list($ok, $v) = cache_decode(shared_get(cache_path($d, 'counter'), $err));
        is_same($v, $total, "Cache::get(counter) on node $n is $procs x $incr = $total");
    }
    $d = $PB . $store;
    $all = 0;
    for ($i = 0; $i < $procs; $i++) {
        list($ok, $v) = cache_decode(shared_get(cache_path($d, "worker:$i"), $err));
        $all += $ok && is_array($v) && $v['id'] === $i ? 1 : 0;
    }
    is_same($all, $procs, "node B has every process's own key (their directories made concurrently)");
    list($ok, $v) = cache_decode(shared_get(cache_path($d, 'settings'), $err));
    ok($ok && settings_ok($v), 'Cache::get(settings) is one of the values written');
    no_warnings('final gets');
    rm_tree($PA . $work);
}

// ======================================================= 4. appenders

function append_line($kind, $id, $j)
{
    return sprintf("%s writer %d line %02d %s\n", $kind, $id, $j, str_repeat(chr(97 + $id), 40));
}

function worker_append($root, $work, $id, $lines)
{
    $P = mount($root, wrapper_options(30)) . $work;
    $res = ['plain' => 0, 'locked' => 0, 'handle' => 0, 'errors' => []];
    $err = function ($what) use (&$res) {
        $e = error_get_last();
        if (count($res['errors']) < 10) {
            $res['errors'][] = $what . (isset($e['message']) ? ": $e[message]" : '');
        }
    };
    wait_go();
    $h = @fopen("$P/handle.log", 'a');        // a logger's stream, open all along
    if (!$h) {
        $err("fopen(handle.log, 'a')");
    }
    for ($j = 1; $j <= $lines; $j++) {
        $l = append_line('plain', $id, $j);
        if (@file_put_contents("$P/plain.log", $l, FILE_APPEND) === strlen($l)) {
            $res['plain']++;
        } else {
            $err("FILE_APPEND line $j");
        }
        $l = append_line('locked', $id, $j);
        if (@file_put_contents("$P/locked.log", $l, FILE_APPEND | LOCK_EX) === strlen($l)) {
            $res['locked']++;
        } else {
            $err("FILE_APPEND|LOCK_EX line $j");
        }
        $l = append_line('handle', $id, $j);
        if ($h && @fwrite($h, $l) === strlen($l)) {
            $res['handle']++;
        } elseif ($h) {
            $err("fwrite line $j");
        }
    }
    if ($h && !@fclose($h)) {
        $err('fclose(handle.log)');
        $res['handle'] = 0;
    }
    emit_result($res);
}

function case_append()
{
    need_roots(2);
    $lines = (int)opt('lines', 50);
    $roots = $GLOBALS['ROOTS'];
    $o = wrapper_options(30);
    $work = work_name('append');
    $P = [];
    foreach ($roots as $i => $r) {
        $P[$i] = mount($r, $o) . $work;
    }
    take_warnings();
    ok(@mkdir($P[0]), 'mkdir of the log directory') or diag(implode("\n", take_warnings()));
    ok(is_dir($P[1]), 'it is a directory on node B');
    no_warnings('mkdir');

    $ws = [spawn_worker(['worker-append', $roots[0], $work, '0', (string)$lines]),
           spawn_worker(['worker-append', $roots[1], $work, '1', (string)$lines])];
    if (!ok(!in_array(null, $ws, true), 'two php processes started (proc_open)')) {
        return;
    }
    foreach ($ws as &$w) {
        worker_tell($w, "go\n");
    }
    unset($w);
    $t0 = microtime(true);
    workers_wait($ws, [0, 1], $t0 + (float)opt('deadline', 120));
    diag(sprintf('2 x %d x 3 appends took %.1f s', $lines, microtime(true) - $t0));
    foreach ($ws as $id => $w) {
        $node = $id ? 'B' : 'A';
        $r = check_worker($w, "appender $id (node $node)") + ['plain' => 0, 'locked' => 0, 'handle' => 0, 'errors' => []];
        is_same($r['plain'], $lines, "appender $id: every file_put_contents(FILE_APPEND) returned the line's length");
        is_same($r['locked'], $lines, "appender $id: every file_put_contents(FILE_APPEND | LOCK_EX) did");
        is_same($r['handle'], $lines, "appender $id: every fwrite on its fopen('a') handle did, and fclose");
        foreach ($r['errors'] as $e) {
            diag("appender $id: $e");
        }
    }
    foreach (['plain', 'locked', 'handle'] as $kind) {
        $want = [];
        for ($id = 0; $id < 2; $id++) {
            for ($j = 1; $j <= $lines; $j++) {
                $want[] = rtrim(append_line($kind, $id, $j), "\n");
            }
        }
        foreach ($P as $i => $p) {
            $node = chr(65 + $i);
            $c = @file_get_contents("$p/$kind.log");
            $got = is_string($c) ? explode("\n", rtrim($c, "\n")) : [];
            $counts = array_count_values($got);
            $once = 0;
            foreach ($want as $l) {
                $once += isset($counts[$l]) && $counts[$l] === 1 ? 1 : 0;
            }
            ok(is_string($c) && $once === count($want) && count($got) === count($want)
               && substr($c, -1) === "\n",
               "$kind.log on node $node: all " . count($want) . ' lines, each exactly once, nothing else')
                or diag(is_string($c) ? count($got) . " lines, $once of the expected ones exactly once" : 'could not be read');
            $ordered = true;
            for ($id = 0; $id < 2; $id++) {
                $mine = array_values(array_filter($got, function ($l) use ($kind, $id) {
                    return strpos($l, "$kind writer $id ") === 0;
                }));
                $ordered = $ordered && $mine === array_slice($want, $id * $lines, $lines);
            }
            ok($ordered, "$kind.log on node $node: each writer's lines in the order it wrote them");
        }
    }
    no_warnings('reading the logs');
    rm_tree($P[0]);
}

// ======================================================== 5. a big copy

function case_bigcopy()
{
    need_roots(1);
    $mib = (int)opt('mib', 1024);
    $size = $mib * MIB;
    $limit = 8 * MIB;
    $scratch = rtrim(opt('scratch', sys_get_temp_dir()), '/');
    $o = wrapper_options(100);
    $work = work_name('big');
    $A = mount($GLOBALS['ROOTS'][0], $o) . $work;
    $tag = 'rw-big-' . getmypid() . '-' . substr(md5(uniqid('', true)), 0, 6);
    $src = "$scratch/$tag.src";
    $dst = "$scratch/$tag.back";
    register_shutdown_function(function () use ($src, $dst) {
        @unlink($src);
        @unlink($dst);
    });
    take_warnings();

    // The local source, written in 256 KiB pieces (never held whole).
    $t = microtime(true);
    $block = random_bytes(256 * 1024);
    $h = hash_init('sha256');
    $fp = fopen($src, 'wb');
    for ($i = 0; $i < $mib * 4; $i++) {
        $c = $block ^ str_repeat(pack('J', $i), 32768);
        hash_update($h, $c);
        fwrite($fp, $c);
    }
    unset($c);
    fclose($fp);
    $sha = hash_final($h);
    clearstatcache();
    is_same(filesize($src), $size, sprintf('a local file of %d MiB (%.1f s)', $mib, microtime(true) - $t));
    diag("source sha256: $sha");
    $peak = memory_get_peak_usage(true);
    ok($peak < $limit, 'making it kept the peak memory under 8 MiB (' . kib($peak) . ')');

    ok(@mkdir($A), 'mkdir of the target directory') or diag(implode("\n", take_warnings()));
    if (function_exists('memory_reset_peak_usage')) {
        memory_reset_peak_usage();
    }
    $t = microtime(true);
    ok(copy($src, "$A/big.bin"), 'copy() of the local file into the store');
    $up = microtime(true) - $t;
    $peak = memory_get_peak_usage(true);
    ok($peak < $limit, sprintf('the upload (%.1f s, %.0f MiB/s) kept the peak memory under 8 MiB (%s)', $up, $mib / max($up, 0.001), kib($peak)));
    no_warnings('copy() into the store');
    clearstatcache();
    is_same(@filesize("$A/big.bin"), $size, 'filesize of the stored copy');

    if (function_exists('memory_reset_peak_usage')) {
        memory_reset_peak_usage();
    }
    $t = microtime(true);
    $in = @fopen("$A/big.bin", 'rb');
    $out = fopen($dst, 'wb');
    $n = $in ? stream_copy_to_stream($in, $out) : false;
    $ok = $in && fclose($in);
    fclose($out);
    $down = microtime(true) - $t;
    is_same($n, $size, 'stream_copy_to_stream of the stored copy into a local file copies every byte');
    ok($ok, 'fclose of the read stream');
    $peak = memory_get_peak_usage(true);
    ok($peak < $limit, sprintf('the download (%.1f s, %.0f MiB/s) kept the peak memory under 8 MiB (%s)', $down, $mib / max($down, 0.001), kib($peak)));
    no_warnings('stream_copy_to_stream out of the store');
    clearstatcache();
    $t = microtime(true);
    is_same(@hash_file('sha256', $dst), $sha, 'the copy brought back has the SHA-256 of the source');
    diag(sprintf('hashing it took %.1f s', microtime(true) - $t));

    unlink($src);
    unlink($dst);
    clearstatcache();
    ok(!file_exists($src) && !file_exists($dst), 'the local files are removed');
    if (!opt('keep', '')) {
        ok(@unlink("$A/big.bin") && @rmdir($A), 'the stored copy and its directory are removed');
    }
    no_warnings('clean-up');
}

// ================================================== 6. nodes away

/** The [FIRST, SECOND] scheme (local: the first directory), SECOND alone, FIRST alone. */
function failover_mounts(array $o)
{
    need_roots(2);
    list($first, $second) = $GLOBALS['ROOTS'];
    $work = opt('work', '');
    if ($work === '') {
        fwrite(STDERR, "the failover phases need --work=NAME\n");
        exit(2);
    }
    $both = is_url_root($first) ? mount([$first, $second], $o) : mount($first, $o);
    return [$both . $work, mount($second, $o) . $work, mount($first, $o) . $work];
}

function failover_text($tag)
{
    return str_repeat("written through the second node while the first was $tag\n", 400);
}

const BEFORE = "written before the first node went away\n";

/** The bound on one call: the timeout, the connect timeout and a margin. */
function call_bound(array $o)
{
    return $o['timeout'] + $o['connect_timeout'] + max(1.0, $o['timeout'] / 2);
}

/** Run $f, check its result with $check and its duration against $bound. */
function timed_check($desc, callable $f, callable $check, $bound)
{
    $t = microtime(true);
    $r = $f();
    $dt = microtime(true) - $t;
    $good = $check($r);
    ok($good, $desc);
    if (!$good) {
        diag('got: ' . short(var_export($r, true)));
    }
    ok($dt <= $bound, sprintf('%s: returned within %.1f s (took %.2f s)', $desc, $bound, $dt));
    return $r;
}

function case_failover_prepare()
{
    $o = wrapper_options(3);
    list($both, $second, $first) = failover_mounts($o);
    take_warnings();
    ok(mkdir($second), 'mkdir of the work directory through the second node');
    is_same(file_put_contents("$second/before.txt", BEFORE), strlen(BEFORE), 'before.txt written through the second node');
    is_same(file_get_contents("$first/before.txt"), BEFORE, 'the first node serves it');
    is_same(file_get_contents("$both/before.txt"), BEFORE, 'the wrapper given both nodes serves it');
    $l = scandir($both);
    ok(is_array($l) && in_array('before.txt', $l, true), 'scandir through both nodes lists it');
    no_warnings('prepare');
}

function case_failover_degraded()
{
    $o = wrapper_options(3);
    $tag = opt('tag', 'away');
    list($both) = failover_mounts($o);
    $bound = call_bound($o);
    diag(sprintf('timeout %.1f s, connect_timeout %.1f s: each call must return within %.1f s',
                 $o['timeout'], $o['connect_timeout'], $bound));
    take_warnings();
    $text = failover_text($tag);
    timed_check("first node $tag: file_get_contents of a file written before", function () use ($both) {
        return file_get_contents("$both/before.txt");
    }, function ($r) { return $r === BEFORE; }, $bound);
    timed_check("first node $tag: file_put_contents returns the byte count", function () use ($both, $tag, $text) {
        return file_put_contents("$both/during-$tag.txt", $text);
    }, function ($r) use ($text) { return $r === strlen($text); }, $bound);
    timed_check("first node $tag: file_get_contents of that file", function () use ($both, $tag) {
        return file_get_contents("$both/during-$tag.txt");
    }, function ($r) use ($text) { return $r === $text; }, $bound);
    timed_check("first node $tag: fopen('w'), fwrite, fclose", function () use ($both, $tag) {
        $fp = fopen("$both/stream-$tag.txt", 'w');
        return $fp && fwrite($fp, "streamed while $tag\n") === strlen("streamed while $tag\n") && fclose($fp);
    }, function ($r) { return $r === true; }, $bound);
    timed_check("first node $tag: mkdir", function () use ($both, $tag) {
        return mkdir("$both/dir-$tag");
    }, function ($r) { return $r === true; }, $bound);
    timed_check("first node $tag: is_dir of the new directory", function () use ($both, $tag) {
        clearstatcache();
        return is_dir("$both/dir-$tag");
    }, function ($r) { return $r === true; }, $bound);
    timed_check("first node $tag: scandir lists the old and the new entries", function () use ($both) {
        return scandir($both);
    }, function ($r) use ($tag) {
        return is_array($r) && !array_diff(['before.txt', "during-$tag.txt", "stream-$tag.txt", "dir-$tag"], $r);
    }, $bound);
    timed_check("first node $tag: filesize", function () use ($both, $tag) {
        clearstatcache();
        return filesize("$both/during-$tag.txt");
    }, function ($r) use ($text) { return $r === strlen($text); }, $bound);
    no_warnings("first node $tag");
}

function case_failover_unreachable()
{
    need_roots(1);
    $o = wrapper_options(3);
    $work = opt('work', 'rw-fo');
    $only = mount($GLOBALS['ROOTS'][0], $o) . $work;
    $bound = call_bound($o);
    diag(sprintf('timeout %.1f s, connect_timeout %.1f s: each call must fail within %.1f s',
                 $o['timeout'], $o['connect_timeout'], $bound));
    take_warnings();
    $calls = [
        'file_get_contents' => function () use ($only) { return file_get_contents("$only/before.txt"); },
        'file_put_contents' => function () use ($only) { return file_put_contents("$only/new.txt", 'x'); },
        'mkdir' => function () use ($only) { return mkdir("$only/newdir"); },
        'scandir' => function () use ($only) { return scandir($only); },
    ];
    foreach ($calls as $name => $f) {
        timed_check("only an unreachable node: $name returns false", $f, function ($r) { return $r === false; }, $bound);
        warned('/./', "only an unreachable node: $name");
    }
}

function case_failover_recovered()
{
    $o = wrapper_options(10);
    list($both, $second, $first) = failover_mounts($o);
    take_warnings();
    is_same(@file_get_contents("$first/before.txt"), BEFORE, 'the first node, back, serves before.txt');
    $want = ['before.txt'];
    foreach (array_filter(explode(',', opt('tags', ''))) as $tag) {
        is_same(@file_get_contents("$first/during-$tag.txt"), failover_text($tag),
                "the first node serves what was written while it was $tag");
        ok(is_dir("$first/dir-$tag"), "the first node has the directory made while it was $tag");
        array_push($want, "during-$tag.txt", "stream-$tag.txt", "dir-$tag");
    }
    $l = scandir($first);
    $l = is_array($l) ? array_values(array_diff($l, ['.', '..'])) : $l;
    sort($want);
    is_same($l, $want, 'scandir through the first node lists exactly those');
    no_warnings('after recovery');
    rm_tree($both);
    clearstatcache();
    ok(!file_exists($second), 'the work directory is removed');
}

// ================================================================ main

switch ($case) {
    case 'flysystem':            case_flysystem(); break;
    case 'wordpress':            case_wordpress(); break;
    case 'cache':                case_cache(); break;
    case 'append':               case_append(); break;
    case 'bigcopy':              case_bigcopy(); break;
    case 'failover-prepare':     case_failover_prepare(); break;
    case 'failover-degraded':    case_failover_degraded(); break;
    case 'failover-unreachable': case_failover_unreachable(); break;
    case 'failover-recovered':   case_failover_recovered(); break;
    case 'worker-cache-incr':    worker_cache_incr($ROOTS[0], $ROOTS[1], $ROOTS[2], (int)$ROOTS[3]); exit(0);
    case 'worker-cache-read':    worker_cache_read($ROOTS[0], $ROOTS[1]); exit(0);
    case 'worker-cache-write':   worker_cache_write($ROOTS[0], $ROOTS[1]); exit(0);
    case 'worker-append':        worker_append($ROOTS[0], $ROOTS[1], (int)$ROOTS[2], (int)$ROOTS[3]); exit(0);
    default:
        fwrite(STDERR, "usage: php realworld_test.php CASE [--option=value ...] ROOT ... (see the comment at the top)\n");
        exit(2);
}
done_testing();
