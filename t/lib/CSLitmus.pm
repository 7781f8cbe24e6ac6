package CSLitmus;
# Runs litmus, the WebDAV server test suite (Debian package litmus), and
# reads its report.  Each suite (basic, copymove, props, locks, http) runs
# as its own litmus process in its own directory: litmus writes debug.log
# and child.log into its working directory, and without -k it stops at the
# first suite that has a failure.
#
# litmus prints, per test, "NN. name....... " before running it and the
# result after it; on a terminal it redraws the line with "\r":
#    3. put_get............... pass
#   18. cond_put_corrupt_token WARNING: PUT failed with 400 not 423
#       ...................... pass (with 1 warning)
#    5. copy_nodestcoll....... FAIL (COPY with no parent collection ...)
#    7. foo................... SKIPPED (why)
#   <- summary for `basic': of 16 tests run: 16 passed, 0 failed. 100.0%
# Test names repeat inside a suite (props has several "propget"), so a test
# is known by its number and name.
use strict;
use warnings;

use File::Path qw(make_path);

our $LITMUS = '/usr/bin/litmus';
our @SUITES = qw(basic copymove props locks http);

# run(URL, DIR, suites => [...], timeout => SECONDS)
# -> [ suite result, ... ] in the order run; a suite result is
#    { suite => NAME, dir => ITS DIRECTORY, rc => exit status, output => TEXT,
#      tests => [ { num, name, result, reason, warnings => [...] }, ... ],
#      summary => { run, passed, failed } or undef }
# result is 'pass', 'fail', 'skip' or 'none' (started, never finished:
# litmus died or was killed by the timeout).  URL must name an existing
# collection and end in "/".  All the suites together get at most timeout
# (300) seconds (timeout(1) ends a suite that runs into it, exit 124); a
# suite left without time is not run (exit 124, no tests).
sub run {
    my ($url, $dir, %opt) = @_;
    my @suites = @{ $opt{suites} || \@SUITES };
    my $deadline = time + ($opt{timeout} || 300);
    my @res;
    for my $suite (@suites) {
        my $d = "$dir/$suite";
        make_path($d);
        my $left = $deadline - time;
        if ($left < 1) {
            push @res, { suite => $suite, tests => [], summary => undef,
                         dir => $d, rc => 124,
                         output => 'not run: no time left' };
            next;
        }
        my $pid = open(my $fh, '-|') // die "fork: $!";
        if (!$pid) {
            chdir $d or die "chdir $d: $!";
            $ENV{TESTS} = $suite;
            open STDIN, '<', '/dev/null';
            open STDERR, '>&', \*STDOUT;
            exec 'timeout', $left, $LITMUS, $url;
            die "exec $LITMUS: $!";
        }
        my $out = do { local $/; <$fh> } // '';
        close $fh;
        my $rc = $? >> 8;
        my ($r) = grep { $_->{suite} eq $suite } @{ parse($out) };
        $r ||= { suite => $suite, tests => [], summary => undef };
        @$r{qw(dir rc output)} = ($d, $rc, $out);
        push @res, $r;
    }
    return \@res;
}

# parse(TEXT) -> [ suite result without dir/rc/output, ... ]
sub parse {
    my ($text) = @_;
    my (@suites, $s, $t, $open);
    # The redrawn lines become lines of their own.
    (my $clean = $text) =~ s/\r\n?/\n/g;
    $clean =~ s/\e\[[\d;]*m//g;             # colours, should a tty be there
    my $outcome = sub {                     # what follows a test's dots
        my ($rest) = @_;
        return unless $t;
        if ($rest =~ /^WARNING:\s*(.*)/) {
            push @{ $t->{warnings} }, $1;
        } elsif ($rest =~ /^(?:pass|XFAIL)\b/) {
            $t->{result} = 'pass';
        } elsif ($rest =~ /^(FAIL|SKIPPED|OOPS)\b\s*(.*)/) {
            $t->{result} = $1 eq 'SKIPPED' ? 'skip' : 'fail';
            $t->{reason} = $2;
            # "(why)", which may go on over the next lines.
            $open = $t->{reason} =~ s/^\(// && $t->{reason} !~ s/\)$//;
        }
    };
    for my $line (split /\n/, $clean) {
        if ($open && $line !~ /^\s*\d+\. \w/ && $line !~ /^(?:<-|->) /) {
            $open = $line !~ s/\)$//;
            $t->{reason} .= " $line";
            next;
        }
        $open = 0;
        if ($line =~ /^-> running `([^']+)':/) {
            $s = { suite => $1, tests => [], summary => undef };
            push @suites, $s;
            undef $t;
        } elsif ($line =~ /^<- summary for `([^']+)': of (\d+) tests run: (\d+) passed, (\d+) failed/) {
            $s->{summary} = { run => $2, passed => $3, failed => $4 } if $s;
            undef $t;
        } elsif ($s && $line =~ /^\s*(\d+)\. (\w+?)\.* (.*)$/) {
            my ($num, $name, $rest) = ($1, $2, $3);
            # The line of a test is drawn twice: before and after running.
            unless ($t && $t->{num} == $num) {
                $t = { num => $num, name => $name, result => 'none',
                       reason => '', warnings => [] };
                push @{ $s->{tests} }, $t;
            }
            $outcome->($rest);
        } elsif ($line =~ /^ {4}\.+ (.*)$/ || $line =~ /^(WARNING:.*)$/) {
            $outcome->($1);                 # the result after warnings
        }
    }
    return \@suites;
}

# neon's bookkeeping in debug.log, and the frame of httpd's error pages,
# left out of excerpts: what remains are the requests (line, headers,
# body) and the responses (status line, headers, body).
my $NOISE = qr/^(?:Header\ Name:\ |Running\ \w+\ hooks|Request\ sent;
                  |End\ of\ headers|Reading\ \d+\ bytes|Got\ \d+\ bytes
                  |Read\ block|Body\ block|Request\ ends\.|Sending\ request
                  |\[hdr\]\s*$|XML:\ |Running\ destroy|sess:\ |ah_
                  |\[?<!DOCTYPE\ HTML|<html>|<head>|<\/head><body>
                  |<\/body><\/html>|<h1>|\]\s*$|User-Agent:|TE:\ trailers
                  |Connection:\ TE|\[hdr\]\ (?:Date|Server):)/x;

# debug_excerpt(SUITE RESULT, TEST, MAX_LINES) -> the end (MAX_LINES, 40)
# of what litmus logged in debug.log while running TEST ({num, name}).
sub debug_excerpt {
    my ($r, $t, $max) = @_;
    $max ||= 40;
    open my $fh, '<', "$r->{dir}/debug.log" or return "(no debug.log: $!)";
    my (@sect, $in);
    while (my $l = <$fh>) {
        if ($l =~ /^\*{7} Running test (\d+): (\S+) \*{8}$/) {
            $in = $1 == $t->{num} && $2 eq $t->{name};
            @sect = () if $in;
        }
        push @sect, $l if $in && $l !~ $NOISE && $l =~ /\S/;
    }
    return "(test $t->{num} is not in debug.log)" unless @sect;
    my $skip = @sect > $max ? @sect - $max : 0;
    my $text = ($skip ? "[... $skip lines]\n" : '') . join '', @sect[ $skip .. $#sect ];
    # Bodies can be long lines: keep the excerpt readable.
    $text =~ s/^(.{300}).+$/$1 [...]/mg;
    return $text;
}

# counts(SUITE RESULT) -> "P passed, F failed, S skipped, N unfinished of T"
sub counts {
    my ($r) = @_;
    my %n = (pass => 0, fail => 0, skip => 0, none => 0);
    $n{ $_->{result} }++ for @{ $r->{tests} };
    return sprintf '%d passed, %d failed, %d skipped, %d unfinished of %d',
        @n{qw(pass fail skip none)}, scalar @{ $r->{tests} };
}

1;
