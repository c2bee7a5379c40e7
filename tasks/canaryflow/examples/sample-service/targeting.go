package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The subset of JSONLogic that flagd users write segment rules with: if, ==, !=, <, <=, >,
// >=, and, or, !, in, var, cat, and flagd's fractional. Values are what encoding/json decodes:
// nil, bool, float64, string, []any and map[string]any.

type operator func(args []any, data map[string]any) (any, error)

var operators map[string]operator

func init() {
	operators = map[string]operator{
		"var":        opVar,
		"if":         opIf,
		"and":        opAnd,
		"or":         opOr,
		"!":          opNot,
		"==":         opEqual,
		"!=":         opNotEqual,
		"<":          comparison(func(c int) bool { return c < 0 }),
		"<=":         comparison(func(c int) bool { return c <= 0 }),
		">":          comparison(func(c int) bool { return c > 0 }),
		">=":         comparison(func(c int) bool { return c >= 0 }),
		"in":         opIn,
		"cat":        opCat,
		"fractional": opFractional,
	}
}

// checkRule rejects operators this evaluator does not know, before the rule is ever used.
func checkRule(rule any) error {
	switch r := rule.(type) {
	case []any:
		for _, item := range r {
			if err := checkRule(item); err != nil {
				return err
			}
		}
	case map[string]any:
		if len(r) != 1 {
			return fmt.Errorf("a rule object needs exactly one operator, got %d keys", len(r))
		}
		for name, args := range r {
			if _, ok := operators[name]; !ok {
				return fmt.Errorf("operator %q is not supported", name)
			}
			return checkRule(args)
		}
	}
	return nil
}

// evalRule evaluates a JSONLogic rule against `data`.
func evalRule(rule any, data map[string]any) (any, error) {
	switch r := rule.(type) {
	case []any:
		out := make([]any, len(r))
		for i, item := range r {
			v, err := evalRule(item, data)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case map[string]any:
		for name, args := range r {
			op, ok := operators[name]
			if !ok {
				return nil, fmt.Errorf("operator %q is not supported", name)
			}
			list, isList := args.([]any)
			if !isList {
				list = []any{args}
			}
			return op(list, data)
		}
		return nil, errors.New("empty rule object")
	default:
		return rule, nil
	}
}

// evalArgs evaluates every argument; most operators are eager.
func evalArgs(args []any, data map[string]any) ([]any, error) {
	values, err := evalRule(args, data)
	if err != nil {
		return nil, err
	}
	return values.([]any), nil
}

func opVar(args []any, data map[string]any) (any, error) {
	values, err := evalArgs(args, data)
	if err != nil || len(values) == 0 {
		return data, err
	}
	path := fmt.Sprint(values[0])
	var fallback any
	if len(values) > 1 {
		fallback = values[1]
	}
	if path == "" {
		return data, nil
	}
	var current any = data
	for _, part := range strings.Split(path, ".") {
		m, ok := current.(map[string]any)
		if !ok {
			return fallback, nil
		}
		if current, ok = m[part]; !ok {
			return fallback, nil
		}
	}
	return current, nil
}

// opIf is JSONLogic's if / else-if chain: [cond, then, cond, then, ..., else]; lazy.
func opIf(args []any, data map[string]any) (any, error) {
	for i := 0; i+1 < len(args); i += 2 {
		cond, err := evalRule(args[i], data)
		if err != nil {
			return nil, err
		}
		if truthy(cond) {
			return evalRule(args[i+1], data)
		}
	}
	if len(args)%2 == 1 {
		return evalRule(args[len(args)-1], data)
	}
	return nil, nil
}

// opAnd returns the first falsy value or the last one; lazy.
func opAnd(args []any, data map[string]any) (any, error) {
	var v any = false
	for _, arg := range args {
		var err error
		if v, err = evalRule(arg, data); err != nil || !truthy(v) {
			return v, err
		}
	}
	return v, nil
}

// opOr returns the first truthy value or the last one; lazy.
func opOr(args []any, data map[string]any) (any, error) {
	var v any = false
	for _, arg := range args {
		var err error
		if v, err = evalRule(arg, data); err != nil || truthy(v) {
			return v, err
		}
	}
	return v, nil
}

func opNot(args []any, data map[string]any) (any, error) {
	values, err := evalArgs(args, data)
	if err != nil || len(values) == 0 {
		return true, err
	}
	return !truthy(values[0]), nil
}

func opEqual(args []any, data map[string]any) (any, error) {
	values, err := evalArgs(args, data)
	if err != nil || len(values) < 2 {
		return false, err
	}
	return looseEqual(values[0], values[1]), nil
}

func opNotEqual(args []any, data map[string]any) (any, error) {
	equal, err := opEqual(args, data)
	return equal == false, err
}

// comparison builds <, <=, > and >=; with three arguments, a < b < c (JSONLogic's "between").
func comparison(holds func(int) bool) operator {
	return func(args []any, data map[string]any) (any, error) {
		values, err := evalArgs(args, data)
		if err != nil || len(values) < 2 {
			return false, err
		}
		for i := 0; i+1 < len(values) && i < 2; i++ {
			c, ok := compare(values[i], values[i+1])
			if !ok || !holds(c) {
				return false, nil
			}
		}
		return true, nil
	}
}

// opIn is membership in an array, or substring in a string.
func opIn(args []any, data map[string]any) (any, error) {
	values, err := evalArgs(args, data)
	if err != nil || len(values) < 2 {
		return false, err
	}
	switch haystack := values[1].(type) {
	case []any:
		for _, item := range haystack {
			if looseEqual(values[0], item) {
				return true, nil
			}
		}
	case string:
		return strings.Contains(haystack, toString(values[0])), nil
	}
	return false, nil
}

func opCat(args []any, data map[string]any) (any, error) {
	values, err := evalArgs(args, data)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, v := range values {
		b.WriteString(toString(v))
	}
	return b.String(), nil
}

// opFractional is flagd's fractional split. Its first argument, when it evaluates to a
// string, is the value bucketed; otherwise the value is flagKey + targetingKey. Each further
// argument is [variant, weight]. The bucketing, exactly as flagd computes it:
//
//	h      = int32(murmur3_x86_32(value, seed 0))
//	ratio  = |h| / (2^31 - 1)                       // in [0, 1]
//	bucket = ratio * totalWeight                     // weights summing to 100: buckets 0..99
//	serve the first variant whose cumulative weight exceeds bucket
//
// e.g. ["on", 25], ["off", 75] serves "on" when int(ratio*100) is 0..24, "off" for 25..99.
func opFractional(args []any, data map[string]any) (any, error) {
	values, err := evalArgs(args, data)
	if err != nil {
		return nil, err
	}
	if len(values) == 0 {
		return nil, errors.New("fractional: no arguments")
	}
	bucketBy, isString := values[0].(string)
	if isString || values[0] == nil {
		values = values[1:]
	}
	if !isString {
		targetingKey, ok := data["targetingKey"].(string)
		if !ok {
			return nil, errors.New("fractional: no bucketing value and no targetingKey")
		}
		flagKey, _ := opVar([]any{"$flagd.flagKey"}, data)
		bucketBy = toString(flagKey) + targetingKey
	}
	variants, weights, err := fractionalDistribution(values)
	if err != nil {
		return nil, err
	}
	return fractionalVariant(bucketBy, variants, weights), nil
}

func fractionalDistribution(values []any) ([]string, []float64, error) {
	variants, weights := make([]string, 0, len(values)), make([]float64, 0, len(values))
	for _, v := range values {
		pair, ok := v.([]any)
		if !ok || len(pair) == 0 || len(pair) > 2 {
			return nil, nil, fmt.Errorf("fractional: %v is not [variant, weight]", v)
		}
		name, ok := pair[0].(string)
		if !ok {
			return nil, nil, fmt.Errorf("fractional: variant %v is not a string", pair[0])
		}
		weight := 1.0
		if len(pair) == 2 {
			if weight, ok = pair[1].(float64); !ok || weight < 0 {
				return nil, nil, fmt.Errorf("fractional: weight %v of %q is not a number >= 0", pair[1], name)
			}
		}
		variants, weights = append(variants, name), append(weights, weight)
	}
	return variants, weights, nil
}

// fractionalVariant applies the bucketing documented on opFractional.
func fractionalVariant(bucketBy string, variants []string, weights []float64) any {
	total := 0.0
	for _, w := range weights {
		total += w
	}
	bucket := fractionalRatio(bucketBy) * total
	end := 0.0
	for i, w := range weights {
		end += w
		if bucket < end {
			return variants[i]
		}
	}
	return nil
}

// fractionalRatio maps a value to [0, 1] as flagd does.
func fractionalRatio(value string) float64 {
	h := int32(murmur3Sum32([]byte(value)))
	return math.Abs(float64(h)) / math.MaxInt32
}

// truthy is JavaScript's truthiness, which JSONLogic uses.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0 && !math.IsNaN(x)
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	default:
		return true
	}
}

// number reads a number or a numeric string.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && strings.TrimSpace(x) != ""
	}
	return 0, false
}

// compare orders two values: numerically when both are numbers or numeric strings,
// as strings when both are strings; anything else does not compare.
func compare(a, b any) (int, bool) {
	if x, ok := number(a); ok {
		if y, ok := number(b); ok {
			switch {
			case x < y:
				return -1, true
			case x > y:
				return 1, true
			}
			return 0, true
		}
	}
	x, aString := a.(string)
	y, bString := b.(string)
	if aString && bString {
		return strings.Compare(x, y), true
	}
	return 0, false
}

func looseEqual(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if c, ok := compare(a, b); ok {
		return c == 0
	}
	x, aBool := a.(bool)
	y, bBool := b.(bool)
	return aBool && bBool && x == y
}

func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}
