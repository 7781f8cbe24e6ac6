<?php
// Minimal TAP output for the PHP client tests (t/30_php.t reads it).
// Every PHP warning, notice or deprecation is recorded: tests either
// expect some (take_warnings) or check there were none (no_warnings).

error_reporting(E_ALL);
ini_set('display_errors', 'stderr');

$GLOBALS['tap_n'] = 0;
$GLOBALS['tap_warnings'] = [];

set_error_handler(function ($no, $msg, $file = '', $line = 0) {
    if (!(error_reporting() & $no)) {
        return false;                       // silenced with @
    }
    $GLOBALS['tap_warnings'][] = $msg;
    return true;
});

function ok($cond, $desc)
{
    $n = ++$GLOBALS['tap_n'];
    $desc = str_replace(["\r", "\n"], ' ', $desc);
    echo ($cond ? 'ok' : 'not ok') . " $n - $desc\n";
    return (bool)$cond;
}

function is_same($got, $want, $desc)
{
    $r = ok($got === $want, $desc);
    if (!$r) {
        diag('got:  ' . short(var_export($got, true)));
        diag('want: ' . short(var_export($want, true)));
    }
    return $r;
}

function short($s)
{
    return strlen($s) > 200 ? substr($s, 0, 200) . '...' : $s;
}

function diag($msg)
{
    foreach (explode("\n", (string)$msg) as $l) {
        echo "# $l\n";
    }
}

/** The warnings raised since the last call, and forget them. */
function take_warnings()
{
    $w = $GLOBALS['tap_warnings'];
    $GLOBALS['tap_warnings'] = [];
    return $w;
}

/** ok() if no warning was raised since the last check. */
function no_warnings($desc)
{
    $w = take_warnings();
    $r = ok(!$w, "$desc: no warnings");
    foreach ($w as $m) {
        diag("warning: $m");
    }
    return $r;
}

/** ok() if one of the warnings since the last check matches $re; prints them. */
function warned($re, $desc)
{
    $w = take_warnings();
    $hit = false;
    foreach ($w as $m) {
        diag("warning: $m");
        $hit = $hit || preg_match($re, $m);
    }
    return ok($hit, "$desc: warning matching $re");
}

function done_testing()
{
    echo '1..' . $GLOBALS['tap_n'] . "\n";
}
