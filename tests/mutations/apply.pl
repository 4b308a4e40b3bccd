#!/usr/bin/perl
# apply.pl - reads one mutation (tests/mutations/*.mut, format in README)
# and applies it to a copy of the tree, or prints its fields.
#   apply.pl MUTATION TREE      apply every substitution under TREE
#   apply.pl MUTATION --check   only check that each still applies (to .)
#   apply.pl MUTATION FIELD     print a field: tests, suite, timeout_scale, env
#                               or files
# An exact-text substitution whose "from" text is not found exactly once in
# its file fails loudly: the code moved on and the mutation must be
# rewritten, not silently skipped or applied in the wrong place.
use strict;
use warnings;

my ($mut, $arg) = @ARGV;
die "usage: apply.pl MUTATION (TREE|--check|tests|suite|files)\n" unless defined $arg;
(my $name = $mut) =~ s{.*/|\.mut$}{}g;
open(my $fh, '<', $mut) or die "mutate: $mut: $!\n";
my (%field, @subs, $mode, $cur);
while (my $line = <$fh>) {
    if (defined $mode && $line =~ /^@@ (to|end)$/) {
        if ($1 eq 'to') { die "mutate: $name: '@@ to' twice\n" if $mode ne 'from'; $mode = 'to'; next; }
        die "mutate: $name: '@@ end' without '@@ to'\n" if $mode ne 'to';
        push @subs, $cur;
        undef $mode;
        next;
    }
    if (defined $mode) { $cur->{$mode} .= $line; next; }
    next if $line =~ /^#/ || $line =~ /^\s*$/;
    if ($line =~ /^@@ from (\S+)$/) {
        $cur = {file => $1, from => '', to => ''};
        $mode = 'from';
    } elsif ($line =~ /^(tests|suite|timeout_scale|env):\s*(.*?)\s*$/) {
        $field{$1} = $2;
    } else {
        die "mutate: $name: cannot parse: $line";
    }
}
die "mutate: $name: unterminated substitution\n" if defined $mode;
die "mutate: $name: no substitution\n" unless @subs;
die "mutate: $name: no 'tests:' line\n" unless $field{tests};
$field{suite} //= 'plain';
$field{timeout_scale} //= 1;
$field{env} //= '';
die "mutate: $name: timeout_scale must be a positive number\n"
  unless $field{timeout_scale} =~ /^[0-9]*\.?[0-9]+$/ && $field{timeout_scale} > 0;
die "mutate: $name: suite must be plain, tsan or chaos\n" unless $field{suite} =~ /^(plain|tsan|chaos)$/;
# Split as mutate.sh's run() splits (on spaces and tabs): a word with any
# other blank or control character in it fails the check below, instead
# of being read here as two words and exported there as one.
for my $word (split /[ \t]+/, $field{env}) {
    die "mutate: $name: env must be OX_NAME=VALUE words, apart: $word\n"
      unless $word =~ /^OX_[A-Z0-9_]+=[A-Za-z0-9_.]+$/;
    # run() sets these itself, and would override them silently.
    die "mutate: $name: env cannot set OX_TEST_TIMEOUT_SCALE (use timeout_scale)\n"
      if $word =~ /^OX_TEST_TIMEOUT_SCALE=/;
    die "mutate: $name: env cannot set OX_TEST_SCALE in the tsan suite\n"
      if $word =~ /^OX_TEST_SCALE=/ && $field{suite} eq 'tsan';
}

if ($arg =~ /^(tests|suite|timeout_scale|env)$/) { print "$field{$arg}\n"; exit 0; }
if ($arg eq 'files') { my %s; print "$_\n" for grep { !$s{$_}++ } map { $_->{file} } @subs; exit 0; }

my $tree = $arg eq '--check' ? '.' : $arg;
my %text;
for my $s (@subs) {
    my $path = "$tree/$s->{file}";
    unless (exists $text{$path}) {
        open(my $in, '<', $path) or die "mutate: mutation $name no longer applies: $s->{file}: $!\n";
        local $/;
        $text{$path} = <$in>;
    }
    my $n = () = $text{$path} =~ /\Q$s->{from}\E/g;
    die "mutate: mutation $name no longer applies: its text is found $n times in $s->{file}"
      . " (must be exactly once):\n$s->{from}" if $n != 1;
    $text{$path} =~ s/\Q$s->{from}\E/$s->{to}/;
}
exit 0 if $arg eq '--check';
for my $path (keys %text) {
    open(my $out, '>', $path) or die "mutate: $path: $!\n";
    print $out $text{$path};
}
